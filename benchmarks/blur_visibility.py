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


def paired_lr(hr: np.ndarray, seed: int) -> list[torch.Tensor]:
    """The clean (bicubic x4) and the blurred (paper's blur preset) LR of one HR image, each (1, 3, h, w) in [0, 1]."""
    lrs = [degrade_numpy_uint8(hr, preset(p, SCALE, seed=seed)) for p in ("bicubic", "blur")]
    return [torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0 for lr in lrs]


def best_threshold_accuracy(clean: np.ndarray, blurred: np.ndarray) -> float:
    """Accuracy of the best single threshold on the scores themselves (higher score = blurred)."""
    values, is_blurred = np.r_[clean, blurred], np.r_[np.zeros(len(clean)), np.ones(len(blurred))].astype(bool)
    return float(max(((values >= t) == is_blurred).mean() for t in values))


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
            for lr in paired_lr(hr, i):
                with torch.no_grad():
                    logmag = spectrum(lr)[0, :64].numpy() * 2.0 - 5.0  # undo the feature's centring
                row.append(logmag[high].mean() - logmag[middle].mean())
            stats.append(row)
        a = np.array(stats)
        shift = a[:, 1] - a[:, 0]
        accuracy = best_threshold_accuracy(-a[:, 0], -a[:, 1])  # blur lowers the statistic
        print(f"| {label} | {len(a)} | {shift.mean():.3f} +- {shift.std():.3f} | {a[:, 0].std():.3f} "
              f"| {accuracy:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
