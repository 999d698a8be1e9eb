#!/usr/bin/env python3
"""How visible is the paper's blur preset (3x3, sigma 2.0, before the x4 downscale) in one LR image?

For every image of a set, compares the clean LR with the blurred LR through one
blur-sensitive statistic: the mean log |8x8 DCT coefficient| of Y over high
frequencies (u + v >= 9) minus that over middle ones (3 <= u + v <= 5), from
`BlockSpectrum`. Prints the shift the blur causes on each image (paired), the
spread of the statistic across clean images, and the accuracy of the best single
threshold chosen on the same images (an optimistic bound for telling blurred
from clean images by this statistic).

    python3 benchmarks/blur_visibility.py Set14 Set5
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, preset
from causalsr.evaluation.harness import load_hr_uint8
from causalsr.models.posterior import BlockSpectrum

SCALE = 4


def main() -> int:
    spectrum = BlockSpectrum()
    u = np.add.outer(np.arange(8), np.arange(8)).ravel()
    high, middle = u >= 9, (u >= 3) & (u <= 5)
    print("| set | images | paired shift (mean +- sd) | spread over clean images (sd) | best-threshold accuracy |")
    print("|---|---|---|---|---|")
    for name in sys.argv[1:] or ["Set14"]:
        label, paths = resolve_dataset(name)
        stats = []
        for i, path in enumerate(paths):
            hr, _ = load_hr_uint8(path)
            row = []
            for p in ("bicubic", "blur"):
                lr = torch.from_numpy(degrade_numpy_uint8(hr, preset(p, SCALE, seed=i))).permute(2, 0, 1)[None] / 255.0
                with torch.no_grad():
                    logmag = spectrum(lr)[0, :64].numpy() * 2.0 - 5.0  # undo the feature's centring
                row.append(logmag[high].mean() - logmag[middle].mean())
            stats.append(row)
        a = np.array(stats)
        shift = a[:, 1] - a[:, 0]
        values, blurred = a.T.ravel(), np.r_[np.zeros(len(a)), np.ones(len(a))].astype(bool)
        accuracy = max(((values < t) == blurred).mean() for t in values)
        print(f"| {label} | {len(a)} | {shift.mean():.3f} +- {shift.std():.3f} | {a[:, 0].std():.3f} | {accuracy:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
