#!/usr/bin/env python3
"""How reliably `jpeg_grid_offset` finds the 8x8 grid of a JPEG cropped after compression.

Each HR image of the set becomes an x4 LR image under each spec (`causalsr eval`'s
pipeline, noise seed = image index), then loses (3, 5) pixels at the top-left, so
a JPEG's grid origin moves to (5, 3). Reports per spec how often that origin is
found, how often a grid is claimed where there is none (specs without JPEG), and
the best-to-second score ratio the decision thresholds (`GRID_MARGIN`).

    python3 benchmarks/jpeg_grid.py --dataset BSD100 --json benchmarks/results/jpeg_grid_bsd100.json
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from causalsr.atomic import atomic_write_text
from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.evaluation.harness import load_hr_uint8, run_meta
from causalsr.models import block_spectrum as grid

SPECS = ("bicubic", "noise:5", "noise:25", "gblur:3", "jpeg:10", "jpeg:30", "jpeg:50", "jpeg:70", "jpeg:90",
         "jpeg:95", "gblur:1.5+noise:10+jpeg:50", "noise:15+jpeg:90")
CROP = (3, 5)


def score_ratio(img: torch.Tensor) -> float:
    """Best over second-best grid score (`grid_scores`, as `jpeg_grid_offset` decides on it)."""
    top = grid.grid_scores(grid.luminance(img))[0].topk(2).values
    return float(top[0] / top[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="BSD100")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    files = resolve_dataset(args.dataset)[1]
    expected = [(8 - CROP[0]) % 8, (8 - CROP[1]) % 8]
    results = {}
    for spec in SPECS:
        found, ratios = [], []
        for i, path in enumerate(files):
            lr = degrade_numpy_uint8(load_hr_uint8(path)[0], parse_degradation(spec, 4, seed=i))[CROP[0]:, CROP[1]:]
            img = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float() / 255
            found.append(grid.jpeg_grid_offset(img)[0].tolist())
            ratios.append(score_ratio(img))
        jpeg = "jpeg" in spec
        hit = sum(f == (expected if jpeg else [0, 0]) for f in found) / len(found)
        results[spec] = {"jpeg": jpeg, "correct": hit, "images": len(found), "ratio_min": min(ratios),
                         "ratio_median": float(np.median(ratios)), "ratio_max": max(ratios)}
        print(f"{spec:28s} {'grid at (5, 3)' if jpeg else 'no grid claimed'}: {hit:6.1%}  "
              f"ratio {min(ratios):.3f} / {np.median(ratios):.3f} / {max(ratios):.3f} (min / median / max)")
    doc = {"meta": run_meta(" ".join(sys.argv)), "dataset": args.dataset, "crop": CROP,
           "margin": grid.GRID_MARGIN, "results": results}
    atomic_write_text(args.json, json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
