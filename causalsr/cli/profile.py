"""`causalsr profile`: a side-by-side analogue of the paper's Table V, measured on this machine.

Each method is measured in a fresh subprocess (so peak-memory figures do not
mix); what each column means and how it is measured: `causalsr.evaluation.profiling`.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from causalsr.cli.common import FAILED, OK, USAGE, add_device_argument, error, resolve_device_arg, write_json
from causalsr.evaluation.harness import run_meta
from causalsr.evaluation.profiling import DEFAULT_METHODS, markdown_table, run_worker, scales_of, span_deploy_counts

__all__ = ["add_arguments", "run", "markdown_table", "span_deploy_counts"]  # the last two: older import paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="M",
                   help="causalsr and methods of the evaluation registry "
                        f"(default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--size", default="1280x720", metavar="WxH", help="OUTPUT size for FLOPs/memory/runtime (720p)")
    p.add_argument("--scales", type=int, nargs="+", choices=(2, 3, 4), default=[2, 3, 4], metavar="S",
                   help="scales to measure, each where the method has it (default: 2 3 4)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), help=argparse.SUPPRESS)  # older spelling: one scale
    p.add_argument("--repeats", type=int, default=3, help="timed runs per runtime figure (median)")
    p.add_argument("--images", default="Set5", help="benchmark name or HR folder for the MP/s figure")
    p.add_argument("--model", metavar="PATH", help="CausalSR checkpoint (its scale only); default: bundled x2/x3/x4")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch CPU threads in every measurement (default: all cores)")
    p.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    add_device_argument(p, default="cpu")  # Table V's figures are CPU ones (peak RSS, CPU threads)


def _rows(method: str, base: dict, scales: list[int]) -> list[dict]:
    """One measured row per scale the method has; one error row when it has none or cannot be built."""
    try:
        have = scales_of(method, base["model"], base["device"])
    except (ImportError, ValueError, FileNotFoundError) as e:
        return [{"method": method, "error": " ".join(str(e).split())}]
    if have is None:
        return [{"method": method, **run_worker({**base, "method": method, "scale": scales[0]})}]
    rows = []
    for s in (s for s in scales if s in have):
        print(f"profiling {method} x{s} ...", file=sys.stderr)
        row = {"method": method, "scale": s, **run_worker({**base, "method": method, "scale": s})}
        if method == "causalsr" and "error" not in row:
            row.update(run_worker({**base, "method": method, "scale": s, "train": True}))
        rows.append(row)
    return rows or [{"method": method, "error": f"no model at x{'/x'.join(map(str, scales))}"}]


def _command(args: argparse.Namespace, scales: list[int]) -> str:
    parts = ["causalsr", "profile", "--methods", *args.methods, "--size", args.size, "--scales", *map(str, scales),
             "--repeats", str(args.repeats), "--images", args.images, "--threads", str(args.threads),
             "--device", str(args.device)] + (["--model", args.model] if args.model else [])
    return shlex.join(parts)


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
    scales = [args.scale] if args.scale else sorted(set(args.scales))
    base = {"size": [w, h], "repeats": args.repeats, "images": args.images, "model": args.model,
            "threads": args.threads, "device": str(device)}
    load_before = os.getloadavg()[0]  # other work on the machine slows every figure: record it
    rows = [row for method in args.methods for row in _rows(method, base, scales)]
    table = markdown_table(rows, f"{w}x{h}", Path(args.images).name)
    print(table)
    if args.json:
        doc = {"size": [w, h], "scales": scales, "repeats": args.repeats, "images": args.images,
               "cpu_count": os.cpu_count(), "device": str(device), "rows": rows,
               "notes": "GMACs = FlopCounterMode FLOPs / 2; [C] = counted from the model's ncnn graph "
                        "(profiling.ncnn_counts); memory = peak-RSS rise in a fresh process",
               "meta": {**run_meta(_command(args, scales)), "load_avg_1min": [load_before, os.getloadavg()[0]]}}
        code = write_json(args.json, doc, "profile")
        if code is not None:
            return code
    return FAILED if any("error" in r for r in rows) else OK
