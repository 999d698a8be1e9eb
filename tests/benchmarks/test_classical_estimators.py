"""The classical baselines of `benchmarks/classical_estimators.py` against independent references.

Noise: pure Gaussian noise of a known sigma on a flat image (no signal to mistake for noise).
JPEG: files that Pillow writes at known qualities; the ghost reads back the quality written.
"""
import io

import numpy as np
import pytest
from classical_estimators import haar_hh1, immerkaer_sigma, jpeg_ghost_quality, wavelet_mad_sigma
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
