"""analyze's reading correction (causalsr/training/mean_calibration.py, causalsr.factors.calibrate; deviation 44)."""
import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from causalsr.cli.main import main
from causalsr.factors import calibrate
from causalsr.inference.report import factor_report
from causalsr.models.model_file import load_pretrained, save_pretrained
from causalsr.training.mean_calibration import knots_from_readings, level_spec, readings
from helpers import posterior_fit_model, write_images

KNOTS = {"noise": [[0.2, 10.6, 15.7, 50.5], [0.0, 10.0, 15.0, 50.0]]}


def test_calibrate_maps_each_knot_reading_onto_its_level_and_is_monotone():
    for r, level in zip(*KNOTS["noise"]):
        assert calibrate("noise", r, KNOTS) == pytest.approx(level)
    grid = np.linspace(-5, 60, 2001)
    out = np.array([calibrate("noise", x, KNOTS) for x in grid])
    assert np.all(np.diff(out) > 0)
    # between knots linear, beyond them the end corrections hold
    assert calibrate("noise", 13.15, KNOTS) == pytest.approx(12.5)
    assert calibrate("noise", 55.0, KNOTS) == pytest.approx(54.5)
    assert calibrate("noise", 0.0, KNOTS) == pytest.approx(-0.2)


def test_calibrate_is_the_identity_without_knots():
    assert calibrate("noise", 12.3, None) == 12.3
    assert calibrate("noise", 12.3, {}) == 12.3
    assert calibrate("blur", 1.7, KNOTS) == 1.7


def test_knots_pool_levels_whose_readings_do_not_increase():
    reads, levels = knots_from_readings([0, 1, 2, 3], np.array([0.1, 0.05, 1.5, 2.8]))
    assert reads == pytest.approx([0.075, 1.5, 2.8]) and levels == pytest.approx([0.5, 2.0, 3.0])
    reads, levels = knots_from_readings([0, 1, 2, 3], np.array([0.3, 0.2, 0.1, 2.8]))  # a run of three pools
    assert reads == pytest.approx([0.2, 2.8]) and levels == pytest.approx([1.0, 3.0])
    reads, levels = knots_from_readings([5, 15, 25], np.array([5.5, 15.9, 25.2]))  # increasing: kept
    assert reads == pytest.approx([5.5, 15.9, 25.2]) and levels == [5, 15, 25]


def test_level_spec_names_one_factor_and_the_absent_value_is_clean():
    assert [level_spec("noise", v) for v in (0, 15, 2.5)] == ["bicubic", "noise:15", "noise:2.5"]
    assert [level_spec("jpeg", v) for v in (100, 30)] == ["bicubic", "jpeg:30"]
    assert [level_spec("blur", v) for v in (0, 1.5)] == ["bicubic", "gblur:1.5"]


def test_report_corrects_the_reading_but_not_the_latent_mean():
    torch.manual_seed(0)
    a = torch.randn(5, 5)
    mean = torch.tensor([[0.2, 0.3, 0.5, 0.0, 0.0]])  # noise reads 15.0
    q = MultivariateNormal(mean, covariance_matrix=(a @ a.T + torch.eye(5))[None] * 1e-3)
    plain, fixed = factor_report(q), factor_report(q, None, KNOTS)
    assert plain.factors["noise"].value == pytest.approx(15.0)
    assert fixed.factors["noise"].value == pytest.approx(calibrate("noise", 15.0, KNOTS))
    assert fixed.factors["noise"].value < 15.0 - 0.5
    assert fixed.factors["blur"].value == plain.factors["blur"].value
    assert fixed.factors["noise"].std == plain.factors["noise"].std
    assert np.array_equal(fixed.z_mean, plain.z_mean)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("hr"), 3, 48)


def test_cli_fits_knots_from_the_mean_readings_and_stores_them(images, tmp_path):
    src = tmp_path / "m"
    save_pretrained(posterior_fit_model(), src, {})
    levels = [0, 10, 30]
    args = ["fit-posterior", str(src), "-o", str(tmp_path / "cal"), "--set", f"train_roots=[{images}]",
            "--set", "lr_patch=16", "--set", "steps=0", "--set", "num_workers=0",
            "--set", "mean_levels={noise: [0, 10, 30]}", "--set", "interval_draws=2"]
    assert main(args) == 0
    model, info = load_pretrained(tmp_path / "cal")
    knots = model.cfg.posterior_mean_knots
    assert info["posterior_fit"]["mean_knots"] == knots and list(knots) == ["noise"]
    expected = knots_from_readings(levels, readings(model.posterior, [str(images)], "noise", levels).mean(axis=0))
    assert knots["noise"][0] == pytest.approx(expected[0]) and knots["noise"][1] == pytest.approx(expected[1])
    assert np.all(np.diff(knots["noise"][0]) > 0)
    assert load_pretrained(src)[0].cfg.posterior_mean_knots == {}


def test_cli_names_a_bad_factor_in_one_line(images, tmp_path, capsys):
    src = tmp_path / "m"
    save_pretrained(posterior_fit_model(), src, {})
    args = ["fit-posterior", str(src), "-o", str(tmp_path / "cal"), "--set", f"train_roots=[{images}]",
            "--set", "lr_patch=16", "--set", "steps=0", "--set", "mean_levels={haze: [0, 1]}"]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mean_levels" in err[0] and "haze" in err[0]
