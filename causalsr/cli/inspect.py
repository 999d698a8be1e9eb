"""`causalsr inspect MODEL`: the liveness report (issue 13), one number per causal part with its threshold.

Prints a table (part, value, threshold, PASS / FAIL / absent). Exits 0 when
every present part passes, 1 when any fails (one stderr line naming the
failing parts), 2 on a setup error (model, data set, output file). The probe
images are synthetic unless `--dataset` names a benchmark or folder; see
`causalsr.evaluation.liveness` for each part and why its threshold is where it is.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial

from causalsr.cli.common import FAILED, OK, add_device_argument, resolve_device_arg, setup_error, write_json


def _image_count(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (spread needs several images), got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="bundled model (x2, x3, x4) or checkpoint path")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON (atomically)")
    p.add_argument("--images", type=_image_count, default=8, metavar="N",
                   help="probe images, each with its own blur/noise/JPEG degradation (default 8)")
    p.add_argument("--dataset", metavar="NAME|DIR",
                   help="take the probe HR images from this benchmark (e.g. Set5) or folder instead of synthetic ones")
    add_device_argument(p, default="cpu")


def run(args: argparse.Namespace) -> int:
    from causalsr.data.imageio import ImageReadError
    from causalsr.evaluation.liveness import format_report, liveness_report, probe_images
    from causalsr.inference.api import load

    fail = partial(setup_error, "inspect")
    device = resolve_device_arg(args, "inspect")
    if isinstance(device, int):
        return device
    try:
        up = load(args.model, device=device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        return fail(str(e))
    try:
        lrs, hrs = probe_images(up.scale, n=args.images, dataset=args.dataset)
    except (FileNotFoundError, ValueError, ImageReadError) as e:
        return fail(f"--dataset: {e}")
    report = liveness_report(up.model, lrs, hrs)
    source = args.dataset or "synthetic"
    print(f"{args.model} (x{up.scale}): {report['images']} probe images ({source})")
    print(format_report(report))
    if args.json:
        doc = {"model": str(args.model), "scale": up.scale, "probe": source, **report}
        code = write_json(args.json, doc, "inspect")
        if code is not None:
            return code
    if report["failed"]:
        print(f"causalsr inspect: {args.model}: below threshold: {', '.join(report['failed'])}", file=sys.stderr)
        return FAILED
    return OK
