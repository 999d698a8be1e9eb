"""Calibrate `analyze`'s readings: a monotone correction of each named factor's posterior mean.

Read on whole images, the posterior is biased where its training patches and
whole images differ (issue 17: noise sigma 10-35 read 0.5-1.0 high on whole
training and benchmark images alike). Here the trained posterior reads whole
training images (the same path as `analyze`) with one factor at a time set to
each of a few levels, and the mean reading per level becomes a knot
(reading -> level) of a piecewise-linear correction (`causalsr.factors.calibrate`).
Only `analyze`'s report uses it (`ModelConfig.posterior_mean_knots`); the restorer
is still told the posterior mean it was trained on. Deviation 44 in
docs/paper-mapping.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.data.imageio import read_image
from causalsr.factors import FACTORS, factor_index
from causalsr.inference.report import FactorReport, factor_report

if TYPE_CHECKING:
    from causalsr.models.causalsr import CausalSR
    from causalsr.models.posterior import DegradationPosterior

SPEC = {"blur": "gblur:{:g}", "noise": "noise:{:g}", "jpeg": "jpeg:{:d}"}
"""The degradation spec of one factor alone at a level (`parse_degradation`)."""


def level_spec(name: str, level: float) -> str:
    """`parse_degradation` spec of factor `name` alone at `level`; the factor's absent value is the clean LR."""
    if level == FACTORS[factor_index(name)].absent:
        return "bicubic"
    return SPEC[name].format(int(level) if name == "jpeg" else level)


def whole_image_report(post: DegradationPosterior, lr: np.ndarray, mean_knots: dict | None = None) -> FactorReport:
    """`analyze`'s report of the posterior on one whole uint8 LR image (H, W, 3), its readings corrected by
    `mean_knots` where given (`causalsr.inference.report.factor_report`; no +- scale)."""
    with torch.no_grad():
        q = post(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)
    return factor_report(q, None, mean_knots)


def readings(post: DegradationPosterior, roots: list[str], name: str, levels: list[float],
             image_step: int = 1) -> np.ndarray:
    """(images, levels) posterior means of factor `name` (physical units, clamped to its range as `analyze`
    reports) on every `image_step`-th whole image of `roots`, each degraded by that factor alone."""
    paths = [p for root in roots for p in resolve_dataset(root)[1]][::image_step]
    out = np.zeros((len(paths), len(levels)))
    post.eval()
    for i, path in enumerate(paths):
        hr = read_image(path).rgb
        for j, level in enumerate(levels):
            lr = degrade_numpy_uint8(hr, parse_degradation(level_spec(name, level), post.scale, seed=i))
            out[i, j] = whole_image_report(post, lr).factors[name].value
    return out


def knots_from_readings(levels: list[float], mean_reading: np.ndarray) -> list[list[float]]:
    """[readings, levels] knots, readings strictly increasing: adjacent levels whose mean readings do not
    increase are pooled (both averaged, weighted by how many levels each knot holds), as in isotonic
    regression."""
    blocks = [[float(r), float(t), 1] for r, t in sorted(zip(mean_reading, levels), key=lambda p: p[1])]
    merged: list[list[float]] = []
    for b in blocks:
        merged.append(b)
        while len(merged) > 1 and merged[-1][0] <= merged[-2][0]:
            (r2, t2, n2), (r1, t1, n1) = merged.pop(), merged.pop()
            n = n1 + n2
            merged.append([(r1 * n1 + r2 * n2) / n, (t1 * n1 + t2 * n2) / n, n])
    return [[b[0] for b in merged], [b[1] for b in merged]]


def fit_mean_knots(model: CausalSR, roots: list[str], levels: dict[str, list[float]],
                   image_step: int = 1) -> dict[str, list[list[float]]]:
    """Fit and store ``model.cfg.posterior_mean_knots`` for the factors named in `levels`; returns it."""
    knots = {name: knots_from_readings(lv, readings(model.posterior, roots, name, lv, image_step).mean(axis=0))
             for name, lv in levels.items()}
    model.cfg.posterior_mean_knots = knots
    return knots


__all__ = ["fit_mean_knots", "knots_from_readings", "level_spec", "readings", "whole_image_report"]
