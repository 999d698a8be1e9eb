"""`causalsr compare REF DIST`: full-reference quality of DIST against REF.

PSNR/SSIM follow `causalsr.metrics.psnr_ssim` (RGB by default, Y with --y,
--crop border pixels removed); LPIPS (v0.1 AlexNet, or VGG) and DISTS are on
full-size RGB. 16-bit images are measured at 8 bits. In the JSON an infinite
PSNR (identical images) is written as null.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from causalsr.cli.common import OK, USAGE, error, write_json
from causalsr.data.imageio import to_uint8
from causalsr.evaluation.harness import METRICS
from causalsr.metrics.psnr_ssim import GREY_CONVENTIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", type=Path, metavar="REF", help="reference (ground-truth) image")
    p.add_argument("dist", type=Path, metavar="DIST", help="image to score against REF")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim"], choices=METRICS, metavar="M",
                   help=f"any of {', '.join(METRICS)} (default: psnr ssim)")
    p.add_argument("--y", action="store_true", help="PSNR/SSIM on the BT.601 Y channel instead of RGB")
    p.add_argument("--crop", type=int, default=0, metavar="N", help="border pixels ignored by PSNR/SSIM (default 0)")
    p.add_argument("--grey-convention", choices=GREY_CONVENTIONS, default="basicsr",
                   help="greyscale REF with --y: 'matlab' measures grey values, 'basicsr' (default) 3 channels -> Y")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the values as JSON")


def run(args: argparse.Namespace) -> int:
    from causalsr.data.imageio import read_image
    from causalsr.metrics.perceptual import perceptual
    from causalsr.metrics.psnr_ssim import psnr, ssim

    try:
        ref, dist = read_image(args.ref), read_image(args.dist)
        if ref.rgb.shape != dist.rgb.shape:
            raise ValueError(f"{args.dist}: size {dist.size[0]}x{dist.size[1]} differs from "
                             f"{args.ref} ({ref.size[0]}x{ref.size[1]})")
        a, b = to_uint8(ref.rgb), to_uint8(dist.rgb)
        opts = dict(crop=args.crop, y=args.y, grey=ref.grey, grey_convention=args.grey_convention)
        values = {}
        for m in args.metrics:
            if m == "psnr":
                values[m] = psnr(a, b, **opts)
            elif m == "ssim":
                values[m] = ssim(a, b, **opts)
            else:
                values[m] = perceptual(m, a, b)
    except (ValueError, ImportError) as e:  # ImageReadError is a ValueError naming the file
        return error("compare", str(e), USAGE)
    space = "Y (BT.601)" if args.y else "RGB"
    print(f"{args.dist} vs {args.ref}  [PSNR/SSIM on {space}, crop {args.crop}"
          + (f", grey convention {args.grey_convention}" if args.y and ref.grey else "") + "]")
    for m, v in values.items():
        print(f"  {m:<10} {v:.4f}" if m != "psnr" else f"  {m:<10} {v:.2f} dB")
    if args.json:
        settings = {"y": args.y, "crop": args.crop, "grey_convention": args.grey_convention}
        if "lpips" in values:
            settings["lpips"] = "v0.1, AlexNet, RGB in [-1, 1], full size"
        doc = {"reference": str(args.ref), "distorted": str(args.dist), "settings": settings,
               "metrics": {m: (v if math.isfinite(v) else None) for m, v in values.items()}}
        code = write_json(args.json, doc, "compare")
        if code is not None:
            return code
    return OK
