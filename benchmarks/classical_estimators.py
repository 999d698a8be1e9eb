"""Classical degradation estimators: the baselines `analyze_accuracy.py --grid` runs beside `analyze`.

They live in `benchmarks/`, not in the product: they exist to be compared with.

- `immerkaer_sigma`: J. Immerkaer, "Fast noise variance estimation", CVIU 64(2), 1996. The image is
  filtered with the difference of two Laplacians (mask [[1,-2,1],[-2,4,-2],[1,-2,1]], which
  cancels any locally quadratic signal), and sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * N|.
- `wavelet_mad_sigma`: D. Donoho, "De-noising by soft-thresholding", IEEE T-IT 41(3), 1995:
  sigma = median(|HH1|) / 0.6745 over the finest diagonal wavelet subband. PyWavelets is not
  installed here, so the subband is a hand-written orthonormal Haar HH1 (one coefficient per
  2x2 block: (a - b - c + d) / 2), which is what `pywt.dwt2(x, "haar")` gives as its HH band.
- `chen_pca_sigma`: G. Chen, F. Zhu, P. A. Heng, "An efficient statistical method for image noise
  level estimation", ICCV 2015. The eigenvalues of the covariance of the image's patches are
  sorted; the noise variance is the mean of the largest tail of the smallest eigenvalues whose
  mean is also its median (as many eigenvalues above the mean as below it): the components
  that hold only noise all have eigenvalue sigma^2, the few that hold signal are larger.
  Patches are 8x8 with all channels in one vector, taken every 3 pixels, as in the authors'
  MATLAB code (`NoiseEstimation.m`).
- `jpeg_ghost_quality`: the re-compression "ghost" (H. Farid, "Exposing digital forgeries from
  JPEG ghosts", IEEE T-IFS 4(1), 2009) as a quality estimator: the image is re-saved at every
  quality q' in 10..100 with the same encoder, and the squared difference d(q') dips sharply
  at the quality the image was saved with, because its DCT coefficients already sit on that
  quality's quantisation lattice. The estimate is the deepest dip; without one, "no JPEG"
  (100). The grid is assumed aligned with the image's top-left corner, as in Farid's basic
  test: a crop that shifts the 8x8 grid removes the dip.

Colour images: Immerkaer and wavelet MAD run per RGB channel and average the channel sigmas (the
degradation adds independent noise to each channel); Chen et al. put the channels of a patch in
one vector (independent noise is still sigma^2 I there); the ghost compares luma (BT.601).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from causalsr.data.degradations import jpeg_roundtrip

IMMERKAER_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
MAD_TO_SIGMA = 0.6745  # median |N(0, 1)|
CHEN_PATCH = 8
CHEN_STRIDE = 3
GHOST_QUALITIES = tuple(range(10, 101))
GHOST_DIP_RATIO = 0.5
"""A dip counts when d(q) is below this fraction of both neighbours' d; else the image reads "no JPEG"."""
GHOST_MIN_WINDOW = 2
GHOST_DIP_SPAN = 5
_LUMA = np.array([0.299, 0.587, 0.114])


def _channels(img: np.ndarray) -> list[np.ndarray]:
    x = np.asarray(img, dtype=np.float64)
    return [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]


def immerkaer_sigma(img: np.ndarray) -> float:
    """Immerkaer's noise sigma of an HxW or HxWxC image, in the image's own units (0-255 for uint8)."""
    sigmas = []
    for ch in _channels(img):
        h, w = ch.shape
        if h < 3 or w < 3:
            raise ValueError(f"immerkaer_sigma: need at least 3x3 pixels, got {w}x{h}")
        conv = F.conv2d(torch.from_numpy(ch)[None, None], torch.from_numpy(IMMERKAER_MASK)[None, None])
        sigmas.append(float(np.sqrt(np.pi / 2) * conv.abs().sum().item() / (6.0 * (w - 2) * (h - 2))))
    return float(np.mean(sigmas))


def haar_hh1(ch: np.ndarray) -> np.ndarray:
    """The finest diagonal subband of the orthonormal Haar transform of a 2-D array (odd edges dropped)."""
    h, w = (ch.shape[0] // 2) * 2, (ch.shape[1] // 2) * 2
    x = ch[:h, :w]
    return (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0


def wavelet_mad_sigma(img: np.ndarray) -> float:
    """Donoho's median-absolute-deviation noise sigma from the Haar HH1 subband, averaged over channels."""
    return float(np.mean([np.median(np.abs(haar_hh1(ch))) / MAD_TO_SIGMA for ch in _channels(img)]))


def patch_matrix(img: np.ndarray, size: int = CHEN_PATCH, stride: int = CHEN_STRIDE) -> np.ndarray:
    """Every `size` x `size` patch of an HxW or HxWxC image at `stride` (and the last row and column
    of patches, as the authors' `image2cols`), as rows of length C * size^2."""
    x = np.asarray(img, dtype=np.float64)
    x = x[..., None] if x.ndim == 2 else x
    h, w = x.shape[:2]
    if h < size or w < size:
        raise ValueError(f"patch_matrix: need at least {size}x{size} pixels, got {w}x{h}")
    ys, xs = (sorted({*range(0, n - size + 1, stride), n - size}) for n in (h, w))  # the last row/column too
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))[np.ix_(ys, xs)]
    return win.reshape(len(ys) * len(xs), -1)


def chen_tail_variance(eigenvalues: np.ndarray) -> float:
    """Chen et al.'s noise variance from patch-covariance eigenvalues: the mean of the largest set of
    smallest eigenvalues whose mean is its median (as many of them above the mean as below)."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    for k in range(lam.size, 0, -1):
        tail = lam[:k]
        tau = tail.mean()
        if np.count_nonzero(tail > tau) == np.count_nonzero(tail < tau):
            return float(tau)
    raise AssertionError("unreachable: a single eigenvalue is its own mean and median")


def chen_pca_sigma(img: np.ndarray, size: int = CHEN_PATCH, stride: int = CHEN_STRIDE) -> float:
    """Chen, Zhu and Heng's (ICCV 2015) noise sigma of an HxW or HxWxC image, in the image's own units."""
    patches = patch_matrix(img, size, stride)
    cov = np.cov(patches, rowvar=False, bias=True)  # 1/n, as the paper's Sigma_x
    return float(np.sqrt(max(chen_tail_variance(np.linalg.eigvalsh(cov)), 0.0)))


def ghost_curve(img: np.ndarray, qualities: tuple[int, ...] = GHOST_QUALITIES) -> np.ndarray:
    """d(q'): mean squared luma difference between an HxWx3 uint8 image and its re-save at each quality q'."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"ghost_curve: expected a uint8 HxWx3 array, got {img.dtype} {img.shape}")
    y = img.astype(np.float64) @ _LUMA
    return np.array([np.mean((jpeg_roundtrip(img, q).astype(np.float64) @ _LUMA - y) ** 2) for q in qualities])


def jpeg_ghost_quality(img: np.ndarray, qualities: tuple[int, ...] = GHOST_QUALITIES) -> float:
    """JPEG quality of an HxWx3 uint8 image by its deepest re-compression dip; 100.0 ("no JPEG") without one.

    On small images the dip is a few qualities wide (neighbouring qualities share most of their
    table), so a candidate q' is a local minimum of d within +-`GHOST_MIN_WINDOW`, and its depth is
    d(q') over the smaller of d(q' -+ `GHOST_DIP_SPAN`) (the one inside the range at the ends).
    The deepest candidate below `GHOST_DIP_RATIO` gives the quality. q' = 100 is never a dip
    (it is the "no JPEG" answer).
    """
    d = ghost_curve(img, qualities)
    n = len(d)
    best_q, best_ratio = 100.0, GHOST_DIP_RATIO
    for i, q in enumerate(qualities):
        if q >= 100 or d[i] > d[max(i - GHOST_MIN_WINDOW, 0):i + GHOST_MIN_WINDOW + 1].min():
            continue
        neighbours = [d[j] for j in (i - GHOST_DIP_SPAN, i + GHOST_DIP_SPAN) if 0 <= j < n]
        ratio = (d[i] + 1e-9) / (min(neighbours) + 1e-9)  # an exact re-save has d = 0
        if ratio < best_ratio:
            best_q, best_ratio = float(q), ratio
    return best_q
