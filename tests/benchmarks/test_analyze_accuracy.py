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


def _fake_doc(rng) -> dict:
    """A --grid JSON for 3 images whose readings are the truth plus noise of known size (no model, no data)."""
    from analyze_accuracy import FACTOR_NAMES, parse_degradation, summarise

    settings = grid_settings()
    records = {}
    for st in settings:
        truth = [float(t) for t in parse_degradation(st["spec"], 4).factors()]
        records[st["name"]] = [{"image": f"{i}.png", "truth": truth,
                                "value": [t + rng.normal(0, 0.1) for t in truth], "sd": [1.0] * len(FACTOR_NAMES),
                                "immerkaer": truth[1] + 1.0, "wavelet_mad": truth[1] - 1.0, "chen_pca": truth[1] + 0.5,
                                "ghost": truth[2]}
                               for i in range(3)]
    meta = {"model": "x4", "timing": {"fake": {"images": 3, "seconds": 0.0}}}
    return {"meta": meta, "results": {"fake": summarise(records, settings)}, "per_image": {"fake": records}}


def test_summary_criteria_tables_and_figure(tmp_path):
    from analyze_accuracy import calibration_figure, grid_tables
    from PIL import Image

    doc = _fake_doc(np.random.default_rng(0))
    c = doc["results"]["fake"]["criteria"]
    assert c["noise_mae_sigma_5_50"]["immerkaer"] == pytest.approx(1.0)
    assert c["noise_bias_sigma_50"]["wavelet_mad"] == pytest.approx(-1.0)
    assert c["noise_clean_read"]["chen_pca"] == pytest.approx(0.5)
    assert c["jpeg_mae_q_10_90"]["ghost"] == 0.0 and c["no_jpeg_flagged"]["analyze"] == 1.0
    assert c["coverage90"]["noise"]["all_settings"] == 1.0  # errors of 0.1 inside +-1.645
    assert c["compound"]["noise"]["single_setting"] == "noise:10"
    text = grid_tables(doc)
    assert "| jpeg_crop (true jpeg) |" in text and "coverage90" in text
    assert "| noise (true noise) | analyze mean | analyze | immerkaer | wavelet_mad | chen_pca |" in text
    assert "| 50 | " in text and "| 0.50 / +0.50 |" in text  # Chen's column: MAE / bias of +0.5
    calibration_figure(doc, str(tmp_path / "fig.png"))
    with Image.open(tmp_path / "fig.png") as im:
        assert im.size[0] > im.size[1] > 100
