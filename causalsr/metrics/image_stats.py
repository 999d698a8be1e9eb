"""No-reference image statistics that say which way an intervention moved an output (issue 13).

All take a float plane (e.g. the metrics' Y from `psnr_ssim.to_measured`) in 0-255 units.
"""
from __future__ import annotations

import numpy as np


def hf_energy(y: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian: grain and fine detail raise it, smoothing lowers it."""
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float((lap ** 2).mean())


def blockiness(y: np.ndarray, period: int) -> float:
    """Mean |step| across block boundaries (every `period` pixels, both axes) over the mean |step| elsewhere.

    1 means the boundaries are no different from anywhere else; JPEG blocks of an
    LR image upscaled s times sit on a period of 8 s.
    """
    ratios = []
    for d in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        boundary = (np.arange(d.shape[1]) % period) == period - 1
        ratios.append(d[:, boundary].mean() / max(float(d[:, ~boundary].mean()), 1e-9))
    return float(np.mean(ratios))


def sharpness(y: np.ndarray) -> float:
    """Mean gradient magnitude (central differences)."""
    gy, gx = np.gradient(y)
    return float(np.hypot(gx, gy).mean())
