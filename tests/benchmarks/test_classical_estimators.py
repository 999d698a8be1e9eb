"""The classical baselines of `benchmarks/classical_estimators.py` against independent references.

Noise: pure Gaussian noise of a known sigma on a flat image (no signal to mistake for noise), and
a smooth synthetic image plus noise of a known sigma.
JPEG: files that Pillow writes at known qualities; the ghost reads back the quality written.
"""
import io

import numpy as np
import pytest
from classical_estimators import (
    chen_pca_sigma,
    chen_tail_variance,
    haar_hh1,
    immerkaer_sigma,
    jpeg_ghost_quality,
    patch_matrix,
    wavelet_mad_sigma,
)
from PIL import Image

from helpers import photo


def _flat_noise(sigma: float, shape=(256, 256), seed: int = 0) -> np.ndarray:
    return 128.0 + np.random.default_rng(seed).normal(0.0, sigma, shape)


@pytest.mark.parametrize("sigma", [5.0, 10.0, 25.0])
def test_immerkaer_reads_pure_gaussian_noise(sigma):
    assert immerkaer_sigma(_flat_noise(sigma)) == pytest.approx(sigma, abs=0.05 * sigma)


def test_immerkaer_ignores_a_plane_and_averages_channels():
    yy, xx = np.mgrid[:64, :64].astype(np.float64)
    assert immerkaer_sigma(3.0 * yy - 2.0 * xx + 7.0) == pytest.approx(0.0, abs=1e-9)  # the mask cancels planes
    rgb = np.stack([_flat_noise(s, (128, 128), seed=i) for i, s in enumerate((4.0, 8.0, 12.0))], axis=-1)
    per_channel = [immerkaer_sigma(rgb[..., c]) for c in range(3)]
    assert immerkaer_sigma(rgb) == pytest.approx(np.mean(per_channel))


@pytest.mark.parametrize("sigma", [5.0, 10.0, 25.0])
def test_wavelet_mad_reads_pure_gaussian_noise(sigma):
    assert wavelet_mad_sigma(_flat_noise(sigma)) == pytest.approx(sigma, abs=0.05 * sigma)


def test_haar_hh1_is_the_orthonormal_haar_diagonal_band():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 8))
    h = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2.0)  # the orthonormal Haar matrix
    expected = np.array([[(h @ x[i:i + 2, j:j + 2] @ h.T)[1, 1] for j in range(0, 8, 2)] for i in range(0, 6, 2)])
    np.testing.assert_allclose(haar_hh1(x), expected, atol=1e-12)
    assert haar_hh1(rng.normal(size=(7, 9))).shape == (3, 4)  # odd edges dropped


@pytest.mark.parametrize("sigma", [5.0, 10.0, 25.0])
def test_chen_reads_pure_gaussian_noise(sigma):
    assert chen_pca_sigma(_flat_noise(sigma)) == pytest.approx(sigma, abs=0.03 * sigma)


def test_chen_tail_is_the_noise_eigenvalue_under_a_few_signal_components():
    """60 noise components of variance 9 and four signal ones: the mean = median tail is the 60, read 9."""
    lam = np.array([500.0, 9.0, 40.0] + [9.0] * 59 + [2000.0, 120.0])
    assert chen_tail_variance(lam) == pytest.approx(9.0)
    spread = np.linspace(8.0, 10.0, 61)  # symmetric about 9: the whole noise band is its own tail
    assert chen_tail_variance(np.concatenate([spread, [300.0, 900.0]])) == pytest.approx(9.0)


def test_patch_matrix_takes_the_authors_patches():
    """Origins every `stride` pixels plus the last row and column (`image2cols`); channels in one row."""
    x = np.random.default_rng(2).normal(size=(13, 11, 3))
    got = patch_matrix(x, size=4, stride=3)
    ref = [x[y:y + 4, c:c + 4].transpose(2, 0, 1).ravel() for y in (0, 3, 6, 9) for c in (0, 3, 6, 7)]
    np.testing.assert_array_equal(got, np.array(ref))


def _smooth_rgb(size: int = 256) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    base = 128 + 60 * np.sin(2 * np.pi * (1.5 * xx + 0.5 * yy)) * np.cos(2 * np.pi * yy)
    return np.stack([base, 0.8 * base + 20, 255 - base], axis=-1)


@pytest.mark.parametrize("sigma", [5.0, 15.0, 30.0])
def test_chen_reads_noise_on_a_smooth_image_and_agrees_with_immerkaer(sigma):
    """A smooth image is where Immerkaer's Laplacian difference is exact; Chen must read the same sigma."""
    noisy = _smooth_rgb() + np.random.default_rng(4).normal(0.0, sigma, (256, 256, 3))
    chen, immerkaer = chen_pca_sigma(noisy), immerkaer_sigma(noisy)
    assert chen == pytest.approx(sigma, abs=0.04 * sigma)
    assert chen == pytest.approx(immerkaer, abs=0.05 * sigma)


def test_chen_reads_little_on_a_smooth_clean_image():
    assert chen_pca_sigma(_smooth_rgb()) < 0.5  # the signal lives in a few components, the tail is ~0


def _pillow_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.mark.parametrize("quality", [10, 20, 50, 75, 90])
def test_ghost_reads_the_quality_pillow_wrote(quality):
    assert jpeg_ghost_quality(_pillow_jpeg(photo(96, 128, seed=3), quality)) == pytest.approx(quality, abs=2)


def test_ghost_reads_no_jpeg_on_a_png_origin_image():
    assert jpeg_ghost_quality(photo(96, 128, seed=3)) == 100.0


def test_ghost_needs_the_grid_aligned():
    """The documented failure the issue measures: a crop that shifts the 8x8 grid removes the dip."""
    cropped = np.ascontiguousarray(_pillow_jpeg(photo(96, 128, seed=3), 30)[3:, 5:])
    assert abs(jpeg_ghost_quality(cropped) - 30) > 2
