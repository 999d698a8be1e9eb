"""Whole-image noise evidence: block noise-level quantiles and patch-covariance levels measure white-noise sigma,
rank images by noise, agree with an eigendecomposition and trace to any size."""
import numpy as np
import pytest
import torch

from causalsr.models.noise_stats import POWERS, QUANTILES, RIDGE, NoiseStatistics, PatchNoise
from causalsr.models.posterior import DegradationPosterior
from helpers import photo


@pytest.mark.parametrize("sigma", [5.0, 20.0, 40.0])
def test_median_block_level_of_white_noise_is_its_sigma(sigma):
    """On a flat image, the mask's gain is 1 on the sd, so the median 8x8-block RMS is sigma (chi with 64 dof:
    its median is within 1% of sigma; replicate borders lower a few blocks)."""
    g = torch.Generator().manual_seed(0)
    img = 0.5 + torch.randn(1, 3, 256, 256, generator=g) * sigma / 255
    median = NoiseStatistics().quantiles(img)[0, QUANTILES.index(0.5)]
    assert median.item() == pytest.approx(sigma, rel=0.03)


def _on_noisy_photo(read) -> list[torch.Tensor]:
    """`read` (a (1, 3, H, W) -> (1, K) function) of a generated photo with noise of sigma 0, 5, 15 and 30."""
    rgb = photo(128, 128).astype(np.float64)
    rng = np.random.default_rng(1)
    out = []
    for sigma in (0.0, 5.0, 15.0, 30.0):
        noisy = np.clip(np.round(rgb + rng.normal(0, sigma, rgb.shape)), 0, 255) / 255
        out.append(read(torch.from_numpy(noisy).permute(2, 0, 1)[None].float())[0])
    return out


def test_quantiles_rise_with_noise_and_texture_lifts_only_the_high_ones():
    stats = _on_noisy_photo(NoiseStatistics().quantiles)
    for low, high in zip(stats, stats[1:]):
        assert bool((high > low).all())
    assert bool((stats[0].diff() >= 0).all())  # quantiles ascend


def test_traced_statistics_equal_eager_at_other_sizes_tiny_included():
    stats = NoiseStatistics()
    traced = torch.jit.trace(stats, torch.rand(2, 3, 40, 48))
    for shape in ((1, 3, 67, 29), (3, 3, 8, 8), (1, 3, 3, 5)):
        x = torch.rand(shape)
        assert torch.allclose(traced(x), stats(x), atol=1e-6)


@pytest.mark.parametrize("option, mlp", [("noise_stats", "noise_mlp"), ("patch_noise", "patch_noise_mlp")])
def test_noise_branches_start_as_nothing_then_get_gradients(option, mlp):
    torch.manual_seed(0)
    base = DegradationPosterior(scale=2, z_dim=4, n_feats=8).eval()
    grown = DegradationPosterior(scale=2, z_dim=4, n_feats=8, **{option: True}).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(f"{mlp}.") for k in missing)
    lr = torch.rand(2, 3, 30, 26)
    a, b = base(lr), grown(lr)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.scale_tril, b.scale_tril)
    b.rsample().sum().backward()
    assert getattr(grown, mlp)[2].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("sigma", [3.0, 12.0, 45.0])
def test_patch_noise_levels_of_white_noise_are_its_sigma(sigma):
    """With 40,000 patches of 48 dimensions the eigenvalues of white noise's covariance lie within about
    3% of sigma^2 (Marchenko-Pastur), so every harmonic-mean level is sqrt(sigma^2 + RIDGE) within 2%."""
    g = torch.Generator().manual_seed(0)
    img = 0.5 + torch.randn(1, 3, 203, 203, generator=g) * sigma / 255
    assert PatchNoise().levels(img)[0].tolist() == pytest.approx([(sigma ** 2 + RIDGE) ** 0.5] * 3, rel=0.02)


def test_patch_noise_traces_equal_an_eigendecomposition():
    """Newton-Schulz's traces against numpy's eigenvalues of the same covariance (all-ones direction left out)."""
    rng = np.random.default_rng(0)
    pn = PatchNoise()
    for sigma in (0.0, 4.0, 30.0):
        rgb = np.clip(photo(90, 130).astype(np.float64) + rng.normal(0, sigma, (90, 130, 3)), 0, 255) / 255
        img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
        z = pn.patches(img)[0].double().numpy()
        lam = np.sort(np.linalg.eigvalsh(z @ z.T / z.shape[1] + RIDGE * np.eye(PatchNoise.dims)))[1:]
        want = [(PatchNoise.dims - 1) / np.sum(lam ** -k) for k in POWERS]
        got = (pn.levels(img)[0].double() ** (2 * torch.tensor(POWERS))).tolist()
        assert got == pytest.approx(want, rel=1e-3)


def test_patch_noise_levels_fall_with_the_power_on_texture_and_rise_with_noise():
    """Higher powers follow the smallest eigenvalues, so on texture they read lower; every level rises with noise."""
    levels = _on_noisy_photo(PatchNoise().levels)
    for low, high in zip(levels, levels[1:]):
        assert bool((high > low).all())
    assert bool((levels[1].diff() < 0).all())


def test_traced_patch_noise_equals_eager_at_other_sizes_tiny_and_cropped_included():
    pn = PatchNoise()
    traced = torch.jit.trace(pn, torch.rand(2, 3, 40, 48))
    for shape in ((1, 3, 67, 29), (1, 3, 300, 270), (3, 3, 4, 4), (1, 3, 2, 5)):
        x = torch.rand(shape)
        assert torch.allclose(traced(x), pn(x), atol=1e-4), shape
