"""Degradations: presets, determinism, shared noise, noise level, JPEG, blur kernel, sampler."""
import json
import math

import numpy as np
import pytest
import torch

from causalsr.data.degradations import (
    PRESET_COMBINATIONS,
    PRESET_NAMES,
    DegradationParams,
    DegradationSampler,
    SamplerConfig,
    auto_ksize,
    degrade,
    degrade_batch,
    degrade_numpy_uint8,
    gaussian_kernel,
    kernel_sigma,
    preset,
)
from causalsr.data.imresize import imresize, make_lr
from causalsr.factors import FACTOR_NAMES
from causalsr.yaml_config import from_dict


@pytest.fixture(scope="module")
def texture():
    g = torch.Generator().manual_seed(0)
    smooth = imresize(torch.rand(3, 16, 16, generator=g, dtype=torch.float64), 4).float()
    return (smooth * 0.6 + 0.2 + 0.1 * torch.rand(1, 64, 64, generator=g)).clamp(0, 1)  # detail in luma


def test_presets_match_paper():
    assert PRESET_NAMES == ("bicubic", "blur", "noise", "jpeg")
    assert preset("bicubic", 4) == DegradationParams(4)
    b = preset("blur", 2)
    assert (b.blur_sigma, b.blur_ksize, b.noise_sigma, b.jpeg_quality) == ((2.0, 2.0, 0.0), 3, 0.0, None)
    assert preset("noise", 3).noise_sigma == 15.0 and preset("jpeg", 3).jpeg_quality == 30
    c = preset("JPEG+blur+noise", 4, seed=7)
    assert c == DegradationParams(4, (2.0, 2.0, 0.0), 3, 15.0, 30, 7)
    assert len(PRESET_COMBINATIONS) == 8 and all(preset(n, 2) for n in PRESET_COMBINATIONS)


@pytest.mark.parametrize("name", ["gauss", "bicubic+noise", "blur+blur", "", "noise+"])
def test_unknown_preset_names(name):
    with pytest.raises(ValueError, match="unknown degradation preset"):
        preset(name, 4)


def test_factors_physical_order():
    assert FACTOR_NAMES == ("blur", "noise", "jpeg")
    np.testing.assert_allclose(DegradationParams(4).factors(), [0, 0, 100])
    p = DegradationParams(2, (1.0, 4.0, 0.3), 21, 7.5, 40)
    np.testing.assert_allclose(p.factors(), [2.0, 7.5, 40])
    assert p.factors().dtype == np.float32


def test_a_truncated_kernel_is_labelled_with_the_blur_it_applies():
    """The paper's 3x3 sigma-2 kernel has the second moments of a sigma-0.80 Gaussian, the sigma whose LR images
    match it (benchmarks/blur_equivalence.py); full kernels keep their nominal sigma."""
    assert preset("blur", 4).factors()[0] == pytest.approx(0.80, abs=0.005)
    for sigma in (1.0, 1.5, 3.0):
        assert kernel_sigma(auto_ksize(sigma), sigma, sigma) == pytest.approx(sigma, rel=0.015)
        k = gaussian_kernel(auto_ksize(sigma), sigma, sigma)
        r = np.arange(k.shape[0]) - k.shape[0] // 2
        assert float((k.sum(0) * r**2).sum()) == pytest.approx(kernel_sigma(k.shape[0], sigma, sigma) ** 2)
    # anisotropic and rotated: the geometric mean of the principal sigmas, rotation-invariant up to grid sampling
    assert kernel_sigma(21, 1.0, 3.0, 0.0) == pytest.approx(kernel_sigma(21, 1.0, 3.0, 1.1), rel=3e-3)
    assert kernel_sigma(21, 1.0, 3.0, 0.0) == pytest.approx(math.sqrt(3.0), rel=0.015)


def test_params_dict_round_trip_and_validation():
    p = DegradationParams(3, (1.5, 0.5, 1.0), 7, 3.0, 50, 123)
    d = json.loads(json.dumps(p.to_dict()))
    assert DegradationParams.from_dict(d) == p
    for bad in [dict(scale=0), dict(scale=2, blur_sigma=(1, 1, 0), blur_ksize=4), dict(scale=2, noise_sigma=-1),
                dict(scale=2, jpeg_quality=0), dict(scale=2, blur_sigma=(0, 1, 0), blur_ksize=3)]:
        with pytest.raises(ValueError):
            DegradationParams(**bad)


def test_gaussian_kernel_properties():
    k = gaussian_kernel(3, 2.0, 2.0)
    assert k.shape == (3, 3) and math.isclose(k.sum(), 1.0)
    np.testing.assert_allclose(k, k.T)
    assert 0.10 < k.min() and k.max() < 0.14  # 3x3 window truncates sigma 2: nearly a box filter
    r = np.arange(15) - 7.0
    for theta, wide_axis in [(0.0, 1), (math.pi / 2, 0)]:
        k = gaussian_kernel(15, 3.0, 1.0, theta)
        var_cols, var_rows = (k.sum(0) * r**2).sum(), (k.sum(1) * r**2).sum()
        assert (var_cols > 4 * var_rows) if wide_axis == 1 else (var_rows > 4 * var_cols)
    k = gaussian_kernel(21, 2.0, 2.0)
    assert math.isclose((k.sum(0) * np.arange(-10, 11) ** 2).sum(), 4.0, rel_tol=1e-3)  # variance sigma^2


def test_bicubic_degrade_is_quantised_imresize(texture):
    lr = degrade(texture, preset("bicubic", 4))
    assert lr.shape == (3, 16, 16) and lr.dtype == torch.float32
    torch.testing.assert_close(lr * 255, torch.round(lr * 255))
    ref = torch.floor(imresize(texture, 0.25).clamp(0, 1) * 255 + 0.5) / 255
    torch.testing.assert_close(lr, ref)


def test_same_params_same_output_and_seed_changes_noise(texture):
    p = preset("blur+noise+jpeg", 4, seed=5)
    assert torch.equal(degrade(texture, p), degrade(texture, p))
    q = preset("blur+noise+jpeg", 4, seed=6)
    assert not torch.equal(degrade(texture, p), degrade(texture, q))


def test_counterfactual_uses_the_same_noise():
    """Y_cf = degrade(X', same params): flat images at two levels get identical noise fields."""
    p = preset("noise", 2, seed=11)
    y1 = degrade(torch.full((3, 32, 32), 0.4), p) - 0.4
    y2 = degrade(torch.full((3, 32, 32), 0.6), p) - 0.6
    assert (y1 - y2).abs().max() <= 1.01 / 255  # equal up to 8-bit rounding
    assert y1.std() > 10 / 255


def test_noise_level_on_flat_image():
    lr = degrade(torch.full((3, 256, 256), 0.5), DegradationParams(2, noise_sigma=15.0, seed=3))
    assert abs(float((lr - 0.5).std()) * 255 - 15.0) < 0.5
    assert abs(float((lr - 0.5).mean()) * 255) < 0.3


def test_jpeg_changes_image_and_q100_nearly_not(texture):
    grey = texture.mean(0, keepdim=True).expand(3, -1, -1)  # no chroma: 4:2:0 subsampling loses nothing
    clean = degrade(grey, preset("bicubic", 2))
    q30 = degrade(grey, preset("jpeg", 2))
    q100 = degrade(grey, DegradationParams(2, jpeg_quality=100))
    assert (q30 - clean).abs().mean() * 255 > 3
    assert (q100 - clean).abs().mean() * 255 < 1


def test_blur_applies_the_kernel_to_an_impulse():
    hr = torch.zeros(3, 9, 9)
    hr[:, 4, 4] = 1.0
    p = DegradationParams(1, (2.0, 0.7, 0.5), 5)
    lr = degrade(hr, p)
    expected = torch.zeros(9, 9, dtype=torch.float64)
    expected[2:7, 2:7] = torch.from_numpy(gaussian_kernel(5, 2.0, 0.7, 0.5))
    assert (lr[1] - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(lr[0], lr[2])


def test_degrade_errors_and_batch(texture):
    with pytest.raises(ValueError, match="multiple of the scale"):
        degrade(texture[:, :63], preset("bicubic", 2))
    with pytest.raises(ValueError):
        degrade(texture[None], preset("bicubic", 2))
    params = [preset("noise", 4, seed=1), preset("jpeg", 4)]
    batch = degrade_batch(torch.stack([texture, texture.flip(-1)]), params)
    assert torch.equal(batch[1], degrade(texture.flip(-1), params[1]))


def test_numpy_uint8_path(texture):
    hr = (texture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[:63, :62]
    np.testing.assert_array_equal(degrade_numpy_uint8(hr, preset("bicubic", 4)), make_lr(hr, 4))
    lr = degrade_numpy_uint8(hr, preset("blur+noise+jpeg", 4, seed=2))
    assert lr.shape == (15, 15, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, degrade_numpy_uint8(hr, preset("blur+noise+jpeg", 4, seed=2)))
    # The float pipeline agrees with the uint8 one up to rounding of intermediate passes.
    t = degrade(torch.from_numpy(hr[:60, :60]).permute(2, 0, 1).float() / 255, preset("blur", 4))
    assert np.abs(t.permute(1, 2, 0).numpy() * 255 - degrade_numpy_uint8(hr[:60, :60], preset("blur", 4))).max() <= 1


def test_sampler_is_deterministic_and_consistent():
    cfg = SamplerConfig(p_clean=0.2, p_preset=0.3)
    sampler = DegradationSampler(cfg)
    a = [sampler.sample(np.random.default_rng(42), 4) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    draws = [sampler.sample(rng, 4) for _ in range(3000)]
    clean = sum(p == DegradationParams(4, seed=p.seed) for p in draws) / len(draws)
    assert abs(clean - 0.3) < 0.03  # p_clean + p_preset/8 ("bicubic") + 0.5 * 0.5**3 (random, nothing applied)
    exact_preset = [p for p in draws if p.blur_ksize == 3 and p.blur_sigma == (2.0, 2.0, 0.0)]
    assert len(exact_preset) > 100
    aniso = [p for p in draws if p.blur_sigma and p.blur_sigma[0] != p.blur_sigma[1]]
    assert len(aniso) > 100
    for p in draws:
        f = p.factors()
        assert f[1] == p.noise_sigma and (f[2] == 100) == (p.jpeg_quality is None)
        if p.blur_sigma not in (None, (2.0, 2.0, 0.0)):  # randomly drawn blur
            assert 0.2 <= f[0] <= 3.0 and p.blur_ksize == min(2 * math.ceil(3 * max(p.blur_sigma[:2])) + 1, 21)
        assert p.noise_sigma == 0 or p.noise_sigma in (15.0,) or 1.0 <= p.noise_sigma <= 30.0
        assert p.jpeg_quality is None or 30 <= p.jpeg_quality <= 95
    assert len({p.seed for p in draws}) > 2990


def test_sampler_config_from_yaml_dict_and_validation():
    cfg = from_dict(SamplerConfig, {"presets": ["blur", "noise"], "blur_ksize": 7})
    assert cfg.presets == ("blur", "noise")
    sampler = DegradationSampler(SamplerConfig(p_clean=0, p_preset=0, p_blur=1, blur_ksize=7))
    p = sampler.sample(np.random.default_rng(1), 2)
    assert p.blur_ksize == 7
    for bad in [dict(p_clean=0.7, p_preset=0.5), dict(presets=("fog",)), dict(blur_ksize=4), dict(p_noise=1.5),
                dict(jpeg_quality=(90, 30))]:
        with pytest.raises(ValueError):
            SamplerConfig(**bad)
