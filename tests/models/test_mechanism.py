"""Degradation mechanism f_y(X, Z) and log p(Y|X,Z) (Eq. 1-2)."""
from __future__ import annotations

import pytest
import torch

from causalsr import factors
from causalsr.data.imresize import imresize
from causalsr.models.mechanism import DegradationMechanism, gaussian_blur


def z_of(blur=0.0, noise=0.0, jpeg=100.0, batch=1, z_dim=8, free=0.0):
    named = factors.normalise(torch.tensor([[blur, noise, jpeg]])).expand(batch, -1)
    return torch.cat([named, torch.full((batch, z_dim - factors.N_NAMED), free)], dim=1)


def randomise_learned_parts(mech):
    torch.manual_seed(3)
    for net in (mech.compression, mech.residual):
        torch.nn.init.normal_(net.conv2.weight, std=0.05)


def smooth_image(h=48, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.avg_pool2d(torch.rand(1, 3, h + 2, w + 2, generator=g), 3, stride=1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_no_degradation_is_plain_imresize(scale):
    mech = DegradationMechanism(scale=scale)
    hr = torch.rand(2, 3, 12 * scale, 12 * scale + 1)
    out = mech(hr, z_of(batch=2, free=0.7))
    torch.testing.assert_close(out, imresize(hr, scale=1 / scale), rtol=0, atol=0)
    assert mech.compression.conv2.keep_init and mech.residual.conv2.keep_init  # survive CausalSR's Xavier init


def test_blur_kernel_identity_and_mean_preserving():
    x = torch.rand(2, 3, 9, 11)
    torch.testing.assert_close(gaussian_blur(x, torch.zeros(2), 7), x, rtol=0, atol=0)
    y = gaussian_blur(x, torch.tensor([1.0, 2.5]), 7)
    assert y.shape == x.shape
    torch.testing.assert_close(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02, rtol=0)


def test_blur_is_monotonic():
    mech = DegradationMechanism(scale=2)
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 64, 64, generator=g)
    energies = []
    for sigma in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0):
        lr = mech(hr, z_of(blur=sigma))
        hf = (lr[..., 1:, :] - lr[..., :-1, :]).square().mean() + (lr[..., 1:] - lr[..., :-1]).square().mean()
        energies.append(hf.item())
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


def test_gradients_reach_x_and_every_named_factor():
    mech = DegradationMechanism(scale=2)
    randomise_learned_parts(mech)
    hr = smooth_image().requires_grad_(True)
    z = z_of(blur=1.0, noise=10.0, jpeg=50.0, free=0.3).requires_grad_(True)
    lr = imresize(smooth_image(seed=1), scale=0.5)
    mech.log_likelihood(lr, hr, z).sum().backward()
    assert hr.grad.abs().sum() > 0
    assert (z.grad.abs() > 0).all(), z.grad  # blur, noise, jpeg and the free dims
    assert mech.sigma_raw.grad is not None


def test_noise_factor_enters_only_the_variance():
    mech = DegradationMechanism(scale=2)
    hr = smooth_image()
    torch.testing.assert_close(mech(hr, z_of(noise=0.0)), mech(hr, z_of(noise=30.0)))
    var = mech.noise_var(z_of(noise=30.0))
    torch.testing.assert_close(var, (mech.sigma_model() ** 2 + (30 / 255) ** 2).expand(1))


def test_log_likelihood_peaks_at_the_true_noise_level():
    mech = DegradationMechanism(scale=2, sigma_floor=1e-4)
    with torch.no_grad():
        mech.sigma_raw.fill_(-20.0)  # model noise ~ floor
    hr = smooth_image(64, 64)
    true_sigma = 15.0
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        mean = mech(hr, z_of())
        lr = mean + true_sigma / 255 * torch.randn(mean.shape, generator=g)
        levels = torch.arange(1.0, 40.0, 0.5)
        ll = torch.stack([mech.log_likelihood(lr, hr, z_of(noise=float(s)))[0] for s in levels])
    best = levels[ll.argmax()].item()
    assert abs(best - true_sigma) <= 1.0, best
    per_pixel = mech.log_likelihood(lr, hr, z_of(noise=15.0), per_pixel=True)
    torch.testing.assert_close(per_pixel * lr[0].numel(), mech.log_likelihood(lr, hr, z_of(noise=15.0)))


def test_jpeg_stand_in_is_off_at_quality_100():
    mech = DegradationMechanism(scale=2)
    randomise_learned_parts(mech)
    hr = smooth_image()
    base = imresize(hr, scale=0.5)
    residual_only = mech(hr, z_of(jpeg=100.0)) - base
    assert (mech(hr, z_of(jpeg=30.0)) - base - residual_only).abs().max() > 1e-4
    torch.testing.assert_close(residual_only, mech.residual(base, z_of()[:, factors.N_NAMED:]))


def test_output_shape_odd_sizes_and_validation():
    mech = DegradationMechanism(scale=3, z_dim=3)
    assert mech(torch.rand(2, 3, 31, 20), z_of(batch=2, z_dim=3)).shape == (2, 3, 11, 7)
    with pytest.raises(ValueError):
        DegradationMechanism(z_dim=2)
