#!/usr/bin/env python3
"""Issue 15's GPU check: a bundled model on a GPU against the CPU, fp32 and fp16, with a JSON record.

    python3 scripts/gpu_check.py --json benchmarks/results/gpu_check_x4.json            # on a CUDA machine
    python3 scripts/gpu_check.py --device cpu --json /tmp/cpu_check.json --images 1     # the CPU-vs-CPU dry run

Each Set5 image (MATLAB-bicubic LR) is upscaled blind through the public API
on `--reference` (the CPU) in fp32 and on `--device` in fp32 and fp16, whole
(no tiles). The LR goes in as 16-bit, so outputs come back at 1/65535
resolution rather than rounded to 8 bits. The record holds, per image and
overall, the max |output difference| in 0-1 units, the max |Z difference|
and the wall time of each pass; it passes when fp32 is within 1/255 of the
reference and fp16 within 2/255. fp16 runs behind the API's probe: where the
probe refuses it (a warning), the fp16 pass is fp32 and the record says so.
Exit status 0 when both tolerances hold, 1 when one does not, 2 when nothing
ran (device absent, no data).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import causalsr
from causalsr.data.datasets import resolve_dataset
from causalsr.data.imresize import make_lr
from causalsr.evaluation.harness import run_meta
from causalsr.inference.devices import resolve_device
from causalsr.training.runlog import device_name

TOLERANCE = {"fp32": 1 / 255, "fp16": 2 / 255}


class _Warnings(logging.Handler):
    """Collects causalsr's warnings (the fp16 probe's fallback among them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def lr_images(dataset: str, scale: int, limit: int | None) -> dict[str, np.ndarray]:
    """{stem: LR image as HxWx3 uint16} (8-bit MATLAB-bicubic LR times 257, i.e. the same values)."""
    _, paths = resolve_dataset(dataset)
    return {p.stem: make_lr(np.asarray(Image.open(p).convert("RGB")), scale).astype(np.uint16) * 257
            for p in paths[:limit]}


def run(up, lr: np.ndarray, precision: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(output in 0-1 as float64, posterior mean Z, seconds) of one blind upscale."""
    started = time.perf_counter()
    out = up.upscale(lr, tile=None, precision=precision)
    if up.device.type == "cuda":
        torch.cuda.synchronize(up.device)
    seconds = time.perf_counter() - started
    z = up.condition(lr).z
    return out.astype(np.float64) / 65535.0, (z.float().cpu().numpy() if z is not None else np.zeros(1)), seconds


def check(model: str, device: str, reference: str, images: dict[str, np.ndarray]) -> dict:
    """Per-image and overall differences of `device` (fp32, fp16) from `reference` (fp32)."""
    ref_up = causalsr.load(model, device=reference)
    dev_up = causalsr.load(model, device=device)
    warnings = _Warnings()
    logging.getLogger("causalsr").addHandler(warnings)
    per_image = {}
    try:
        for name, lr in images.items():
            ref, z_ref, t_ref = run(ref_up, lr, "fp32")
            row = {"reference_s": round(t_ref, 3)}
            for precision in ("fp32", "fp16"):
                before = len(warnings.messages)
                out, z, seconds = run(dev_up, lr, precision)
                diff = np.abs(out - ref)
                row[precision] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
                                  "z_max_abs": float(np.abs(z - z_ref).max()), "seconds": round(seconds, 3),
                                  "warnings": warnings.messages[before:]}
            per_image[name] = row
    finally:
        logging.getLogger("causalsr").removeHandler(warnings)
    summary = {}
    for precision, tol in TOLERANCE.items():
        worst = max(r[precision]["max_abs"] for r in per_image.values())
        summary[precision] = {"max_abs": worst, "max_abs_grey": worst * 255, "tolerance": tol, "pass": worst <= tol}
    summary["fp16"]["ran_in_fp16"] = not any(r["fp16"]["warnings"] for r in per_image.values())
    return {"summary": summary, "per_image": per_image}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", type=Path, required=True, help="write the record here")
    ap.add_argument("--model", default="x4", help="bundled name or model path (default x4)")
    ap.add_argument("--device", default="cuda", help="device under test (default cuda)")
    ap.add_argument("--reference", default="cpu", help="reference device (default cpu)")
    ap.add_argument("--dataset", default="Set5", help="benchmark name or folder of HR images (default Set5)")
    ap.add_argument("--images", type=int, help="use only the first N images")
    ap.add_argument("--commit", help="commit to record where the machine has no git checkout")
    args = ap.parse_args(argv)
    try:
        devices = [resolve_device(args.device), resolve_device(args.reference)]
        up_scale = causalsr.load(args.model).scale
        images = lr_images(args.dataset, up_scale, args.images)
    except (ValueError, FileNotFoundError) as e:
        print(f"gpu_check: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    meta = run_meta("python3 scripts/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    if meta["commit"] == "unknown" and args.commit:
        meta["commit"] = args.commit
    meta.update(device=str(devices[0]), device_name=device_name(devices[0]), reference=str(devices[1]),
                reference_name=device_name(devices[1]), model=args.model, dataset=args.dataset)
    record = {"meta": meta, **check(args.model, str(devices[0]), str(devices[1]), images)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"json": str(args.json), **record["summary"]}))
    return 0 if all(s["pass"] for s in record["summary"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
