"""The grid of `benchmarks/analyze_accuracy.py --grid` is issue 17's, and its summary arithmetic is right."""
import numpy as np
import pytest
from analyze_accuracy import Z90, _stats, grid_settings, subset


def test_grid_is_issue_17s():
    settings = grid_settings()
    by_sweep = {}
    for st in settings:
        by_sweep.setdefault(st["sweep"], []).append(st)
    assert [st["level"] for st in by_sweep["noise"]] == [0, 5, 10, 15, 25, 35, 50]
    for sweep in ("jpeg", "jpeg_crop"):
        assert [st["level"] for st in by_sweep[sweep]] == [10, 20, 30, 50, 70, 90, 100]
        assert all(st["crop"] == (sweep == "jpeg_crop") for st in by_sweep[sweep])
    assert [st["spec"] for st in by_sweep["blur"]] == ["bicubic", "gblur:0.5", "gblur:1", "gblur:1.5", "gblur:2",
                                                       "gblur:3"]
    assert [st["spec"] for st in by_sweep["compound"]] == ["gblur:1.5+noise:10+jpeg:50"]
    assert len({st["name"] for st in settings}) == len(settings)


def test_subset_spreads_evenly_and_keeps_all_by_default():
    paths = list(range(100))
    assert subset(paths, None) == paths
    assert subset(paths, 4) == [0, 25, 50, 75]
    assert subset(paths, 200) == paths


def test_stats_mae_bias_and_coverage():
    est, truth, sd = np.array([11.0, 9.0, 14.0]), np.array([10.0, 10.0, 10.0]), np.array([1.0, 1.0, 1.0])
    s = _stats(est, truth, sd)
    assert s["mae"] == pytest.approx(2.0) and s["bias"] == pytest.approx(4.0 / 3.0)
    assert s["coverage90"] == pytest.approx(2.0 / 3.0)  # |err| 1, 1 inside +-1.645; 4 outside
    assert Z90 == pytest.approx(1.6449, abs=1e-4)
