"""`causalsr profile`: a side-by-side analogue of the paper's Table V, measured on this machine.

Each method is measured in a fresh subprocess (so peak-memory figures do not
mix); what each column means and how it is measured: `causalsr.evaluation.profiling`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from causalsr.cli.common import FAILED, OK, USAGE, add_device_argument, error, resolve_device_arg, write_json
from causalsr.evaluation.profiling import DEFAULT_METHODS, markdown_table, run_worker, span_deploy_counts

__all__ = ["add_arguments", "run", "markdown_table", "span_deploy_counts"]  # the last two: older import paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="M",
                   help="causalsr and methods of the evaluation registry (default: causalsr dat-light span bicubic)")
    p.add_argument("--size", default="1280x720", metavar="WxH", help="OUTPUT size for FLOPs/memory/runtime (720p)")
    p.add_argument("--scale", type=int, default=4, choices=(2, 3, 4), help="scale for FLOPs, memory and MP/s")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per runtime figure (median)")
    p.add_argument("--images", default="Set5", help="benchmark name or HR folder for the MP/s figure")
    p.add_argument("--model", metavar="PATH", help="CausalSR checkpoint (its scale only); default: bundled x2/x3/x4")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch CPU threads in every measurement (default: all cores)")
    p.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    add_device_argument(p, default="cpu")  # Table V's figures are CPU ones (peak RSS, CPU threads)


def run(args: argparse.Namespace) -> int:
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        return error("profile", f"--size expects WxH (e.g. 1280x720), got {args.size!r}", USAGE)
    if args.repeats < 1:
        return error("profile", "--repeats must be at least 1", USAGE)
    device = resolve_device_arg(args, "profile")
    if isinstance(device, int):
        return device
    base = {"scale": args.scale, "size": [w, h], "repeats": args.repeats, "images": args.images, "model": args.model,
            "threads": args.threads, "device": str(device)}
    rows = []
    for method in args.methods:
        print(f"profiling {method} ...", file=sys.stderr)
        row = {"method": method, **run_worker({**base, "method": method})}
        if method == "causalsr" and "error" not in row:
            row.update(run_worker({**base, "method": method, "train": True}))
        rows.append(row)
    table = markdown_table(rows, f"{w}x{h}", args.scale, Path(args.images).name)
    print(table)
    if args.json:
        doc = {"size": [w, h], "scale": args.scale, "repeats": args.repeats, "images": args.images,
               "cpu_count": os.cpu_count(), "device": str(device), "rows": rows,
               "notes": "GMACs = FlopCounterMode FLOPs / 2; [C] = computed from the architecture "
                        "(REFERENCE_NUMBERS.md section 3); memory = peak-RSS rise in a fresh process"}
        code = write_json(args.json, doc, "profile")
        if code is not None:
            return code
    return FAILED if any("error" in r for r in rows) else OK
