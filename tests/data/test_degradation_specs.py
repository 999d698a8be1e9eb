"""Parameterised degradation specs (`parse_degradation`): same params and LR as built by hand, presets, bad specs."""
import numpy as np
import pytest
import torch

from causalsr.data.degradations import (
    PRESET_COMBINATIONS,
    DegradationParams,
    auto_ksize,
    canonical_degradation,
    degrade,
    degrade_numpy_uint8,
    exact_factors,
    parse_degradation,
    preset,
)


@pytest.fixture(scope="module")
def hr():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 48, 40, generator=g)


@pytest.mark.parametrize("spec, hand", [
    ("noise:25+jpeg:50+gblur:1.5", DegradationParams(4, (1.5, 1.5, 0.0), auto_ksize(1.5), 25.0, 50, 7)),
    ("gblur:0.4", DegradationParams(4, (0.4, 0.4, 0.0), auto_ksize(0.4), seed=7)),
    ("gblur:4", DegradationParams(4, (4.0, 4.0, 0.0), auto_ksize(4.0), seed=7)),
    ("noise:0", DegradationParams(4, seed=7)),
    ("Noise:12.5", DegradationParams(4, noise_sigma=12.5, seed=7)),
    ("jpeg:10", DegradationParams(4, jpeg_quality=10, seed=7)),
    ("clean", DegradationParams(4, seed=7)),
    ("blur+noise:5", DegradationParams(4, (2.0, 2.0, 0.0), 3, 5.0, seed=7)),  # the paper's blur, noise 5
])
def test_spec_gives_the_hand_built_params_and_the_same_lr(spec, hand, hr):
    parsed = parse_degradation(spec, 4, seed=7)
    assert parsed == hand
    assert DegradationParams.from_dict(parsed.to_dict()) == hand
    assert torch.equal(degrade(hr, parsed), degrade(hr, hand))
    hr8 = (hr * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(degrade_numpy_uint8(hr8, parsed), degrade_numpy_uint8(hr8, hand))


def test_gblur_is_a_full_kernel_gaussian_as_the_sampler_uses():
    p = parse_degradation("gblur:1.5", 2)
    assert p.blur_ksize == auto_ksize(1.5) == 11 and p.blur_sigma == (1.5, 1.5, 0.0)
    assert parse_degradation("gblur:1.5", 2) != preset("blur", 2)


def test_order_does_not_matter_and_names_are_canonical(hr):
    a = parse_degradation("noise:25+jpeg:50+gblur:1.5", 2, 3)
    b = parse_degradation("gblur:1.5+noise:25+jpeg:50", 2, 3)
    assert a == b and torch.equal(degrade(hr, a), degrade(hr, b))
    assert canonical_degradation("noise:25+JPEG:50+gblur:1.50") == "gblur:1.5+noise:25+jpeg:50"
    assert canonical_degradation("clean") == canonical_degradation("bicubic") == "bicubic"
    assert canonical_degradation("jpeg+blur") == "blur+jpeg"


@pytest.mark.parametrize("name", PRESET_COMBINATIONS)
def test_every_preset_parses_to_itself(name):
    assert parse_degradation(name, 3, seed=5) == preset(name, 3, seed=5)
    assert canonical_degradation(name) == name


def test_exact_factors():
    np.testing.assert_array_equal(exact_factors(parse_degradation("gblur:1.5+noise:10+jpeg:50", 4)), [1.5, 10, 50])
    np.testing.assert_array_equal(exact_factors(parse_degradation("bicubic", 4)), [0, 0, 100])  # absent jpeg = 100
    assert exact_factors(preset("blur+noise", 4)) is None  # 3x3 kernel: not a sigma-2 Gaussian
    assert exact_factors(DegradationParams(4, (1.0, 2.0, 0.3), auto_ksize(2.0))) is None  # anisotropic


@pytest.mark.parametrize("spec, part, why", [
    ("gblur:0", "gblur:0", "blur sigma"), ("gblur:4.5", "gblur:4.5", "blur sigma"),
    ("noise:51", "noise:51", "0..50"), ("noise:-1", "noise:-1", "0..50"),
    ("jpeg:9", "jpeg:9", "10..100"), ("jpeg:101", "jpeg:101", "10..100"), ("jpeg:50.5", "jpeg:50.5", "whole"),
    ("noise:abc", "noise:abc", "not a number"), ("gblur:inf", "gblur:inf", "not a number"),
    ("sharpen:2", "sharpen:2", "unknown kind"), ("blur:1.5", "blur:1.5", "gblur:S"),
    ("noise:5+noise", "noise", "twice"), ("bicubic+jpeg:50", "bicubic", "stand alone"), ("noise:5+", "", "empty"),
])
def test_bad_specs_name_the_bad_part(spec, part, why):
    with pytest.raises(ValueError) as e:
        parse_degradation(spec, 4)
    msg = str(e.value)
    assert f"bad part {part!r}" in msg and why in msg and "\n" not in msg
