"""Block noise-level quantiles: they measure white-noise sigma, rank images by noise, and trace to any size."""
import numpy as np
import pytest
import torch

from causalsr.models.noise_stats import QUANTILES, NoiseStatistics
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


def test_quantiles_rise_with_noise_and_texture_lifts_only_the_high_ones():
    rgb = photo(128, 128).astype(np.float64)
    rng = np.random.default_rng(1)
    stats = []
    for sigma in (0.0, 5.0, 15.0, 30.0):
        noisy = np.clip(np.round(rgb + rng.normal(0, sigma, rgb.shape)), 0, 255) / 255
        stats.append(NoiseStatistics().quantiles(torch.from_numpy(noisy).permute(2, 0, 1)[None].float())[0])
    for low, high in zip(stats, stats[1:]):
        assert bool((high > low).all())
    assert bool((stats[0].diff() >= 0).all())  # quantiles ascend


def test_traced_statistics_equal_eager_at_other_sizes_tiny_included():
    stats = NoiseStatistics()
    traced = torch.jit.trace(stats, torch.rand(2, 3, 40, 48))
    for shape in ((1, 3, 67, 29), (3, 3, 8, 8), (1, 3, 3, 5)):
        x = torch.rand(shape)
        assert torch.allclose(traced(x), stats(x), atol=1e-6)


def test_noise_branch_starts_as_nothing_then_gets_gradients():
    torch.manual_seed(0)
    base = DegradationPosterior(scale=2, z_dim=4, n_feats=8).eval()
    grown = DegradationPosterior(scale=2, z_dim=4, n_feats=8, noise_stats=True).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("noise_mlp.") for k in missing)
    lr = torch.rand(2, 3, 30, 26)
    a, b = base(lr), grown(lr)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.scale_tril, b.scale_tril)
    b.rsample().sum().backward()
    assert grown.noise_mlp[2].weight.grad.abs().sum() > 0
