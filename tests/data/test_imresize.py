"""imresize: against an independent loop implementation of MATLAB's algorithm, plus math properties."""
import math

import numpy as np
import pytest
import torch

from causalsr.data.imresize import crop_to_multiple, imresize, imresize_uint8, make_lr
from helpers import dataset_dir, requires_dataset

SCALES = [1 / 2, 1 / 3, 1 / 4, 1 / 8, 2, 3, 0.7, 1.5]


def keys(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def ref_resize_axis(a, axis, out_len, scale, round_uint8):
    """MATLAB imresize along one axis, one output sample at a time (1-based maths, clamped taps)."""
    a = np.moveaxis(a.astype(np.float64), axis, 0)
    n = a.shape[0]
    stretch = scale if scale < 1 else 1.0
    support = 2.0 / stretch
    out = np.zeros((out_len,) + a.shape[1:])
    for i in range(out_len):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)
        acc, total = 0.0, 0.0
        for j in range(int(math.floor(u - support)), int(math.ceil(u + support)) + 1):
            w = stretch * keys(stretch * (u - j))
            acc = acc + w * a[min(max(j, 1), n) - 1]
            total += w
        out[i] = acc / total
    if round_uint8:
        out = np.floor(np.clip(out, 0, 255) + 0.5)
    return np.moveaxis(out, 0, axis)


def ref_imresize(a, scale, round_uint8=False):
    sh, sw = (scale, scale) if np.isscalar(scale) else scale
    out_h, out_w = math.ceil(a.shape[0] * sh), math.ceil(a.shape[1] * sw)
    passes = [(0, out_h, sh), (1, out_w, sw)]
    if sw < sh:  # MATLAB resizes the dimension with the smaller scale first
        passes.reverse()
    for axis, n, s in passes:
        a = ref_resize_axis(a, axis, n, s, round_uint8)
    return a


@pytest.fixture(scope="module")
def rand_img():
    return np.random.default_rng(0).random((13, 17, 2)) * 255


@pytest.mark.parametrize("scale", SCALES)
def test_float_matches_reference(rand_img, scale):
    x = torch.from_numpy(rand_img).permute(2, 0, 1)
    got = imresize(x, scale).permute(1, 2, 0).numpy()
    ref = ref_imresize(rand_img, scale)
    assert got.shape == ref.shape == (math.ceil(13 * scale), math.ceil(17 * scale), 2)
    np.testing.assert_allclose(got, ref, atol=1e-9)


@pytest.mark.parametrize("scale", SCALES + [(0.5, 0.25), (1.5, 0.6)])
def test_uint8_matches_reference_exactly(rand_img, scale):
    img = rand_img.astype(np.uint8)
    got = imresize_uint8(img, scale)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref_imresize(img, scale, round_uint8=True).astype(np.uint8))


def test_output_size_rules():
    x = torch.rand(1, 3, 13, 17, dtype=torch.float64)
    assert imresize(x, 0.7).shape[-2:] == (10, 12)  # ceil(9.1), ceil(11.9)
    assert imresize(x, 1 / 3).shape[-2:] == (5, 6)
    assert imresize(x, size=(7, 40)).shape[-2:] == (7, 40)
    assert imresize_uint8(np.zeros((13, 17), np.uint8), 2).shape == (26, 34)
    with pytest.raises(ValueError):
        imresize(x)
    with pytest.raises(ValueError):
        imresize(x, 2, size=(3, 3))


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.7, 3])
def test_constant_image_stays_constant(scale):
    x = torch.full((2, 3, 24, 20), 0.37, dtype=torch.float64)
    torch.testing.assert_close(imresize(x, scale), torch.full_like(imresize(x, scale), 0.37))
    u = np.full((24, 20, 3), 201, np.uint8)
    assert (imresize_uint8(u, scale) == 201).all()


@pytest.mark.parametrize("s", [2, 3, 4])
def test_linear_ramp_reproduced_in_interior(s):
    """Integer downscales and upscales reproduce a linear function away from the borders,
    sampled at MATLAB's pixel-centre positions u = x/scale + (1 - 1/scale)/2."""
    rows, cols = np.arange(1, 49, dtype=np.float64)[:, None], np.arange(1, 49, dtype=np.float64)[None, :]
    f = lambda r, c: 0.3 * r - 0.7 * c  # noqa: E731
    x = torch.from_numpy(f(rows, cols))[None]
    down = imresize(x, 1 / s)[0].numpy()
    u = np.arange(1, 48 // s + 1) * s + 0.5 * (1 - s)
    inner = slice(3, -3)  # the widened kernel reaches 2*s HR pixels: clamped taps only in 2 LR pixels
    np.testing.assert_allclose(down[inner, inner], f(u[:, None], u[None, :])[inner, inner], atol=1e-9)
    up = imresize(x, s)[0].numpy()
    v = np.arange(1, 48 * s + 1) / s + 0.5 * (1 - 1 / s)
    inner = slice(3 * s, -3 * s)
    np.testing.assert_allclose(up[inner, inner], f(v[:, None], v[None, :])[inner, inner], atol=1e-9)


def test_batched_and_leading_dims():
    x = torch.rand(2, 4, 3, 11, 9, dtype=torch.float64)
    y = imresize(x, 0.5)
    assert y.shape == (2, 4, 3, 6, 5)
    torch.testing.assert_close(y[1, 2], imresize(x[1, 2], 0.5))


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_differentiable(scale):
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale), (x,))


def test_make_lr_crops_then_downscales():
    hr = np.random.default_rng(1).integers(0, 256, (27, 22, 3), dtype=np.uint8)
    lr = make_lr(hr, 4)
    assert lr.shape == (6, 5, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, imresize_uint8(hr[:24, :20], 0.25))
    assert crop_to_multiple(hr, 3).shape == (27, 21, 3)


@requires_dataset("Set5")
def test_set5_x4_bicubic_reproduces_published_psnr():
    """Published bicubic x4 Set5 PSNR-Y is 28.42 dB (MATLAB: uint8 Y, 4-pixel border)."""
    from PIL import Image

    psnrs = []
    for f in sorted(dataset_dir("Set5").glob("*.png")):
        hr = crop_to_multiple(np.asarray(Image.open(f).convert("RGB")), 4)
        sr = imresize_uint8(make_lr(hr, 4), 4)

        def y(a):
            a = a.astype(np.float64)
            return np.round(16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255)[4:-4, 4:-4]

        psnrs.append(10 * np.log10(255**2 / np.mean((y(hr) - y(sr)) ** 2)))
    assert abs(np.mean(psnrs) - 28.42) < 0.01
