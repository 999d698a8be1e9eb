"""PSNR/SSIM: closed-form cases, a direct-formula SSIM reference, and the calibration RGB PSNR row."""
import math

import numpy as np
import pytest

from causalsr.metrics.psnr_ssim import psnr, ssim, to_measured

# Published plain RGB PSNR of the iqa-calibration pairs (data/iqa-calibration/README.md).
CALIBRATION_PSNR = {"I03": 21.1136, "I04": 20.9872, "I06": 27.0139, "I08": 23.3002, "I19": 21.6186}


def _rand(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_identical_images_give_inf_and_one():
    img = _rand((20, 24, 3), 0)
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def test_known_mse_gives_known_psnr():
    ref = np.zeros((8, 8, 3), np.uint8)
    dist = np.full((8, 8, 3), 10, np.uint8)
    assert psnr(ref, dist, y=False) == pytest.approx(10 * math.log10(255**2 / 100))
    # On Y a uniform RGB offset of 10 moves Y by 10 * 219 / 255.
    assert psnr(ref, dist) == pytest.approx(10 * math.log10(255**2 / (10 * 219 / 255) ** 2))


def test_bt601_luma_of_black_and_white():
    img = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(to_measured(img), [[16.0, 235.0]])


def test_crop_ignores_border_differences():
    ref = _rand((16, 16, 3), 1)
    dist = ref.copy()
    dist[:2] = 0
    dist[:, -2:] = 255
    assert psnr(ref, dist, crop=2) == math.inf
    assert psnr(ref, dist, crop=1) < 40


def test_grey_conventions_differ_by_the_range_compression():
    ref = _rand((16, 16), 2)
    dist = np.clip(ref.astype(int) + _rand((16, 16), 3) % 7 - 3, 0, 255).astype(np.uint8)
    matlab = psnr(ref, dist, grey_convention="matlab")
    basicsr = psnr(ref, dist, grey_convention="basicsr")
    assert basicsr - matlab == pytest.approx(20 * math.log10(255 / 219))
    # A grey source read as 3 equal channels measures the same as the 2-D array.
    ref3, dist3 = (np.repeat(a[..., None], 3, axis=2) for a in (ref, dist))
    assert psnr(ref3, dist3, grey=True, grey_convention="matlab") == pytest.approx(matlab)
    assert psnr(ref3, dist3, grey=False) == pytest.approx(basicsr)


def _ssim_direct(a, b):
    """SSIM written out per window position (Wang et al. 2004 with MATLAB's constants)."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_matches_direct_formula():
    ref, dist = _rand((17, 19, 3), 4), _rand((17, 19, 3), 5)
    dist[::2] = ref[::2]  # partly correlated, so SSIM is not near 0
    expected = _ssim_direct(to_measured(ref), to_measured(dist))
    assert ssim(ref, dist) == pytest.approx(expected, abs=1e-12)
    rgb = [_ssim_direct(to_measured(ref, y=False)[..., c], to_measured(dist, y=False)[..., c]) for c in range(3)]
    assert ssim(ref, dist, y=False) == pytest.approx(np.mean(rgb), abs=1e-12)


def test_ssim_symmetric_and_bounded():
    a, b = _rand((32, 32, 3), 6), _rand((32, 32, 3), 7)
    s = ssim(a, b)
    assert s == pytest.approx(ssim(b, a), abs=1e-15)
    assert -1.0 <= s < 1.0
    assert ssim(a, 255 - a) < 0  # anti-correlated structure


def test_inputs_are_enforced():
    img = _rand((16, 16, 3), 8)
    with pytest.raises(TypeError, match="uint8"):
        psnr(img.astype(np.float32), img)
    with pytest.raises(ValueError, match="sizes differ"):
        psnr(img, img[:8])
    with pytest.raises(ValueError, match="grey_convention"):
        psnr(img, img, grey_convention="other")


def test_calibration_rgb_psnr(calibration_dir):
    from PIL import Image

    for name, published in CALIBRATION_PSNR.items():
        ref = np.asarray(Image.open(calibration_dir / "ref" / f"{name}.bmp").convert("RGB"))
        dist = np.asarray(Image.open(calibration_dir / "dist" / f"{name}.bmp").convert("RGB"))
        assert psnr(ref, dist, y=False) == pytest.approx(published, abs=1e-3), name
