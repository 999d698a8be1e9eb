"""The reliability strips of `analyze --explain`: drawn from the report and the benchmark record given.

Positions are checked against the axis mapping computed here independently (value -> pixel on the
factor's range), and the record against the numbers of a small --grid-shaped JSON.
"""
from __future__ import annotations

import numpy as np
import pytest

from causalsr.cli.reliability import (
    AXIS_END,
    COVERAGE_COLOUR,
    ESTIMATE_COLOUR,
    HEADER_HEIGHT,
    INTERVAL_COLOUR,
    MIN_WIDTH,
    STRIP_HEIGHT,
    Z90,
    reliability_from_grid,
    reliability_strips,
    with_strips,
)
from causalsr.factors import FACTORS
from causalsr.inference.report import FactorEstimate, FactorReport

AXIS_LEFT = 12  # where reliability_strips starts each factor's axis
AXIS_Y = 30  # the axis line's offset from the strip's top


def _report(**values: tuple[float, float]) -> FactorReport:
    """A report whose factors hold (value, sd) from `values` (defaults for the rest)."""
    est = {f.name: FactorEstimate(f.name, f.name, f.unit, *values.get(f.name, (f.low, 0.1)), f.low, f.high)
           for f in FACTORS}
    return FactorReport(est, np.eye(3), np.eye(3), np.zeros(8), np.eye(8))


def _grid_doc(scale: int = 4) -> dict:
    crit = {"coverage90": {"blur": {"own_sweep": 1.0}, "noise": {"own_sweep": 0.5}, "jpeg": {"own_sweep": 0.25}},
            "blur_mae_sigma_0.5_3": {"analyze": 0.45}, "noise_mae_sigma_5_50": {"analyze": 4.76},
            "jpeg_mae_q_10_90": {"analyze": 3.68}}
    meta = {"model": "x4", "scale": scale, "commit": "18469a7abc", "date": "2026-11-28T10:00:00+00:00",
            "timing": {"BSD100": {"images": 25}, "Urban100": {"images": 25}}}
    return {"meta": meta, "results": {"BSD100": {"criteria": {}}, "all": {"criteria": crit}}}


def _runs(row: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int]:
    """First and last column of `row` painted in `colour`."""
    hit = np.flatnonzero((row == colour).all(axis=-1))
    assert hit.size, f"no pixel of colour {colour} in the row"
    return int(hit[0]), int(hit[-1])


def _axis_row(img, factor: int) -> np.ndarray:
    return np.asarray(img)[HEADER_HEIGHT + factor * STRIP_HEIGHT + AXIS_Y]


def test_strip_size_and_interval_width_follow_the_report():
    width = 1000
    right = int(AXIS_END * width) - 24
    noise = FACTORS[1]
    px_per_unit = (right - AXIS_LEFT) / (noise.high - noise.low)
    spans = {}
    for sd in (2.0, 4.0):
        img = reliability_strips(_report(noise=(20.0, sd)), None, width)
        assert img.size == (width, HEADER_HEIGHT + 3 * STRIP_HEIGHT)
        lo, hi = _runs(_axis_row(img, 1), INTERVAL_COLOUR)
        mark = _runs(_axis_row(img, 1), ESTIMATE_COLOUR)
        assert (mark[0] + mark[1]) / 2 == pytest.approx(AXIS_LEFT + 20.0 * px_per_unit, abs=1.5)
        spans[sd] = hi - lo
        assert spans[sd] == pytest.approx(2 * Z90 * sd * px_per_unit, abs=2.0)
    assert spans[4.0] > 1.8 * spans[2.0]  # twice the sd, twice the interval


def test_interval_is_clipped_to_the_factors_range():
    img = reliability_strips(_report(jpeg=(98.0, 10.0)), None, MIN_WIDTH)
    right = int(AXIS_END * MIN_WIDTH) - 24
    lo, hi = _runs(_axis_row(img, 2), INTERVAL_COLOUR)
    assert hi <= right + 1  # 98 + 16.4 is drawn at the axis end (quality 100)
    assert lo == pytest.approx(AXIS_LEFT + (98.0 - Z90 * 10.0 - 10.0) / 90.0 * (right - AXIS_LEFT), abs=1.5)


def test_benchmark_record_is_read_and_drawn():
    rel = reliability_from_grid(_grid_doc(), 4)
    assert rel.factors["noise"].coverage90 == 0.5 and rel.factors["jpeg"].mae == 3.68
    assert "BSD100 + Urban100, 50 images" in rel.source and "18469a7" in rel.source
    img = reliability_strips(_report(), rel, MIN_WIDTH)
    bar = {}
    for i, f in enumerate(("blur", "noise", "jpeg")):
        row = np.asarray(img)[HEADER_HEIGHT + i * STRIP_HEIGHT + 38]  # the coverage bar's middle row
        lo, hi = _runs(row, COVERAGE_COLOUR)
        bar[f] = hi - lo
    assert bar["noise"] == pytest.approx(bar["blur"] / 2, abs=2)
    assert bar["jpeg"] == pytest.approx(bar["blur"] / 4, abs=2)
    without = np.asarray(reliability_strips(_report(), None, MIN_WIDTH))
    assert not (without == COVERAGE_COLOUR).all(axis=-1).any()  # no record, no bar


def test_a_record_of_another_scale_or_shape_is_refused():
    with pytest.raises(ValueError, match="x4 model, this one is x2"):
        reliability_from_grid(_grid_doc(), 2)
    with pytest.raises(ValueError, match="not an analyze_accuracy.py --grid JSON"):
        reliability_from_grid({"meta": {}, "results": {}}, 4)


def test_with_strips_stacks_on_the_wider_width():
    from PIL import Image

    panel = Image.new("RGB", (320, 240), (255, 0, 0))
    strips = reliability_strips(_report(), None, panel.width)
    out = with_strips(panel, strips)
    assert out.size == (MIN_WIDTH, 240 + strips.height)
    px = np.asarray(out)
    assert (px[:240, :320] == (255, 0, 0)).all() and (px[:240, 320:] == 255).all()
    assert np.array_equal(px[240:], np.asarray(strips))
