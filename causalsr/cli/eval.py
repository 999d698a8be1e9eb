"""`causalsr eval`: benchmark a method on standard datasets with the published protocol.

Prints a Markdown table (stdout), a progress bar (stderr, on a terminal) and,
with --json, writes results plus run metadata atomically. Bad images are
skipped, listed at the end, and make the exit status 1.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from causalsr.evaluation.harness import METRICS
from causalsr.metrics.psnr_ssim import GREY_CONVENTIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True,
                   help="bicubic, dat-light, span, causalsr (bundled models), or a checkpoint path")
    p.add_argument("--datasets", nargs="+", required=True, metavar="D",
                   help="benchmark names (Set5 Set14 BSD100 Urban100 Manga109) or folders of HR images")
    p.add_argument("--scales", nargs="+", type=int, required=True, metavar="S", help="upscaling factors, e.g. 2 3 4")
    p.add_argument("--degradation", default="bicubic",
                   help="degradation preset: bicubic, blur, noise, jpeg or a '+' combination (default: bicubic)")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim"], choices=METRICS, metavar="M",
                   help=f"any of {', '.join(METRICS)} (default: psnr ssim); LPIPS is v0.1 AlexNet")
    p.add_argument("--grey-convention", choices=GREY_CONVENTIONS, default="basicsr",
                   help="greyscale HR images: 'matlab' measures grey values, 'basicsr' (default) 3 channels -> Y")
    p.add_argument("--json", type=Path, metavar="PATH", help="write results and metadata as JSON")
    p.add_argument("--save-images", type=Path, metavar="DIR", help="save SR outputs as DIR/method/dataset/xS/name.png")


def _command(args: argparse.Namespace) -> str:
    parts = ["causalsr", "eval", "--method", args.method, "--datasets", *args.datasets,
             "--scales", *map(str, args.scales), "--degradation", args.degradation,
             "--metrics", *args.metrics, "--grey-convention", args.grey_convention]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from causalsr.atomic import atomic_write_text
    from causalsr.evaluation.harness import evaluate, markdown_table, run_meta
    from causalsr.evaluation.methods import load_method

    try:
        method = load_method(args.method)
        results = evaluate(method, args.datasets, args.scales, args.degradation, tuple(args.metrics),
                           args.grey_convention, args.save_images)
    except (KeyError, ImportError, ValueError, FileNotFoundError) as e:
        print(f"causalsr eval: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(f"Y-channel PSNR/SSIM, border crop = scale, grey convention: {args.grey_convention}"
          + ("; LPIPS v0.1 AlexNet on RGB in [-1, 1]" if "lpips" in args.metrics else ""))
    print(markdown_table(results))
    failures = [f for r in results for f in r.failures]
    if args.json:
        meta = run_meta(_command(args), args.grey_convention)
        meta["failures"] = failures
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps({"results": [r.to_dict() for r in results], "meta": meta}, indent=2) + "\n")
    if failures:
        print(f"causalsr eval: {len(failures)} image(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0
