"""PSNR and SSIM with the conventions of published SR tables.

Input conventions (enforced):

- Images are uint8 numpy arrays, HxWx3 RGB or HxW grey: metrics are defined on
  quantised outputs, so floats are refused rather than silently rescaled.
- `y=True` measures the BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255
  (R, G, B in 0..255), unrounded, as MATLAB `rgb2ycbcr(im2double(x))` and BasicSR do.
- `crop` pixels are removed from every border before measuring.
- Greyscale sources (`grey=True`, or a 2-D reference) follow `grey_convention`:
  ``"matlab"`` measures the grey values themselves (RCAN's MATLAB scripts skip
  the colour conversion for 1-channel images); ``"basicsr"`` treats the image as
  three equal channels and converts to Y, compressing the range to 16..235.
  For a 3-channel image of a grey source the grey value is the BT.601-weighted
  channel mean (``rgb2gray``), which is exact when the channels are equal.
- SSIM: 11x11 Gaussian window, sigma 1.5, C1 = (0.01*255)^2, C2 = (0.03*255)^2,
  valid region only (MATLAB `ssim_index` / BasicSR `_ssim`); multi-channel SSIM
  is the mean over channels.

Everything accumulates in float64.
"""
from __future__ import annotations

import numpy as np

GREY_CONVENTIONS = ("matlab", "basicsr")
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_GREY_WEIGHTS = _Y_WEIGHTS / _Y_WEIGHTS.sum()  # 0.299, 0.587, 0.114


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


_WINDOW = _gaussian_window()


def _check(img: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"{what} must be a uint8 numpy array (quantise before measuring), got "
                        f"{getattr(img, 'dtype', type(img).__name__)}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"{what} must be HxW or HxWx3, got shape {img.shape}")
    return img


def to_measured(img: np.ndarray, *, y: bool = True, grey: bool = False,
                grey_convention: str = "basicsr") -> np.ndarray:
    """The float64 plane(s) a metric compares: HxW (Y or grey) or HxWx3 (RGB when `y=False`)."""
    if grey_convention not in GREY_CONVENTIONS:
        raise ValueError(f"grey_convention must be one of {GREY_CONVENTIONS}, got {grey_convention!r}")
    img = _check(img, "image")
    x = img.astype(np.float64)
    if not y:
        return x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2)
    grey = grey or x.ndim == 2
    if grey and grey_convention == "matlab":
        return x if x.ndim == 2 else x @ _GREY_WEIGHTS
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    return 16.0 + x @ _Y_WEIGHTS


def _prepare(ref, dist, crop, y, grey, grey_convention) -> tuple[np.ndarray, np.ndarray]:
    ref = _check(ref, "reference")
    dist = _check(dist, "distorted image")
    if ref.shape[:2] != dist.shape[:2]:
        raise ValueError(f"image sizes differ: reference {ref.shape[:2]} vs distorted {dist.shape[:2]}")
    grey = grey or ref.ndim == 2
    a = to_measured(ref, y=y, grey=grey, grey_convention=grey_convention)
    b = to_measured(dist, y=y, grey=grey, grey_convention=grey_convention)
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop:
        if min(a.shape[:2]) <= 2 * crop:
            raise ValueError(f"crop {crop} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def psnr(ref: np.ndarray, dist: np.ndarray, *, crop: int = 0, y: bool = True, grey: bool = False,
         grey_convention: str = "basicsr") -> float:
    """PSNR in dB (peak 255) between uint8 images; `inf` when they are identical.

    `y=False` gives plain RGB PSNR (mean squared error over all channels).
    """
    a, b = _prepare(ref, dist, crop, y, grey, grey_convention)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian filtering over the valid region of HxW(xC) planes."""
    k = len(_WINDOW)
    rows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0) @ _WINDOW
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=1) @ _WINDOW


def _ssim_planes(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    if min(a.shape[:2]) < len(_WINDOW):
        raise ValueError(f"SSIM needs at least {len(_WINDOW)}x{len(_WINDOW)} pixels, got {a.shape[0]}x{a.shape[1]}")
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a**2
    var_b = _filter_valid(b * b) - mu_b**2
    cov = _filter_valid(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())  # for HxWx3 this is the mean over channels of per-channel SSIM


def ssim(ref: np.ndarray, dist: np.ndarray, *, crop: int = 0, y: bool = True, grey: bool = False,
         grey_convention: str = "basicsr") -> float:
    """SSIM (Wang et al. 2004, MATLAB/BasicSR variant) between uint8 images; 1.0 when identical."""
    a, b = _prepare(ref, dist, crop, y, grey, grey_convention)
    return _ssim_planes(a, b)
