"""analyze's interval calibration (causalsr/training/interval_calibration.py, deviation 40)."""
import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from causalsr.cli.main import main
from causalsr.data.degradations import SamplerConfig
from causalsr.factors import scale_factors
from causalsr.inference.report import factor_report
from causalsr.models.model_file import load_pretrained, save_pretrained
from causalsr.training.interval_calibration import Z90, interval_scale, standardised_errors
from helpers import posterior_fit_model, write_images


def test_interval_scale_recovers_the_spread_of_gaussian_errors():
    """|N(0, s^2)| / 1 has its 90% quantile at Z90 * s, so the fitted scale is s."""
    rng = np.random.default_rng(0)
    errors = np.abs(rng.normal(0.0, [0.5, 1.0, 3.0], size=(200_000, 3)))
    assert np.allclose(interval_scale(errors), [0.5, 1.0, 3.0], rtol=0.02)
    assert np.mean(errors <= Z90 * np.array(interval_scale(errors)), axis=0) == pytest.approx([0.9] * 3, abs=1e-3)


def test_interval_scale_averages_the_coverage_of_all_rows_and_of_the_rows_with_the_factor():
    """Half the rows are read exactly (factor absent), half with |N(0, 1)| errors. Over all rows the coverage
    at scale s is 0.5 + 0.5 F(s), over the present rows F(s) (F the chi(1) CDF of Z90 s); their mean
    0.25 + 0.75 F(s) reaches 0.9 at F(s) = 0.8667, i.e. Z90 s = 1.5011."""
    rng = np.random.default_rng(0)
    n = 400_000
    present = np.zeros((n, 1), dtype=bool)
    present[: n // 2] = True
    errors = np.where(present, np.abs(rng.normal(0.0, 1.0, size=(n, 1))), 0.0)
    assert interval_scale(errors)[0] == pytest.approx(1.2816 / Z90, rel=0.01)  # all rows: 80% of the present half
    assert interval_scale(errors, present)[0] == pytest.approx(1.5011 / Z90, rel=0.01)
    assert interval_scale(errors, np.zeros_like(present))[0] == interval_scale(errors)[0]  # none present: all rows


def test_report_scales_each_sd_and_keeps_the_correlations():
    torch.manual_seed(0)
    a = torch.randn(5, 5)
    q = MultivariateNormal(torch.rand(1, 5), covariance_matrix=(a @ a.T + torch.eye(5))[None] * 1e-3)
    plain, scaled = factor_report(q), factor_report(q, [0.5, 2.0, 1.0])
    for name, s in zip(("blur", "noise", "jpeg"), (0.5, 2.0, 1.0)):
        assert scaled.factors[name].std == pytest.approx(s * plain.factors[name].std)
        assert scaled.factors[name].value == plain.factors[name].value
    assert np.allclose(scaled.correlation, plain.correlation)
    assert plain.factors["noise"].std == pytest.approx(float(q.covariance_matrix[0, 1, 1].sqrt() * scale_factors()[1]))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("hr"), 4, 48)


def test_cli_stores_the_scale_that_gives_90_percent_coverage(images, tmp_path):
    src = tmp_path / "m"
    save_pretrained(posterior_fit_model(), src, {})
    args = ["fit-posterior", str(src), "-o", str(tmp_path / "cal"), "--set", f"train_roots=[{images}]",
            "--set", "lr_patch=16", "--set", "steps=0", "--set", "interval_draws=6", "--set", "num_workers=0"]
    assert main(args) == 0
    model, info = load_pretrained(tmp_path / "cal")
    scale = model.cfg.posterior_sd_scale
    assert info["posterior_fit"]["sd_scale"] == scale and info["posterior_fit"]["steps"] == 0
    # the same draws (same seed and sampler) with the stored scale cover 90% of the truths
    errors, present = standardised_errors(model.posterior, [str(images)], SamplerConfig(), 6)
    for k in range(3):  # 90% on average over all draws and those with the factor, and no wider
        groups = [errors[:, k]] + ([errors[present[:, k], k]] if present[:, k].any() else [])
        assert np.mean([np.mean(g <= Z90 * scale[k] * (1 + 1e-9)) for g in groups]) >= 0.9 - 1e-12
        assert np.mean([np.mean(g <= Z90 * scale[k] * (1 - 1e-9)) for g in groups]) < 0.9
    src_model, _ = load_pretrained(src)
    assert src_model.cfg.posterior_sd_scale == [1.0, 1.0, 1.0]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in src_model.state_dict().items())
