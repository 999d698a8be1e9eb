"""MATLAB-compatible bicubic `imresize` (torch, differentiable) and its uint8 path.

Follows MATLAB's `imresize.m` (not BasicSR's port):

- Keys cubic kernel with a = -0.5 and width 4;
- when downscaling with antialiasing the kernel is stretched by 1/scale;
- pixel-centre mapping ``u = x / scale + 0.5 * (1 - 1 / scale)`` (1-based);
- out-of-range taps are *clamped* to the border (edge replication);
- the output size is ``ceil(in * scale)``;
- dimensions are resized one at a time, the one with the smallest scale first
  (stable sort, so H before W for equal scales);
- for uint8 input every 1-D pass is rounded and saturated to uint8.

Each 1-D pass is a gather of P taps per output sample and a weighted sum, so
memory and time are linear in the image size and autograd works.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

_KERNEL_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@functools.lru_cache(maxsize=256)
def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out_len, P) float64 and 0-based source indices (out_len, P) for one axis."""
    width = _KERNEL_WIDTH
    if scale < 1 and antialias:
        kernel = lambda t: scale * _cubic(scale * t)  # noqa: E731 - widened low-pass kernel
        width = width / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    ind = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - ind)
    weights = weights / weights.sum(axis=1, keepdims=True)
    index = np.clip(ind, 1, in_len).astype(np.int64) - 1
    keep = np.any(weights != 0, axis=0)  # MATLAB drops taps that are zero for every output
    return weights[:, keep], index[:, keep]


def _plan(in_hw: tuple[int, int], scale, size) -> list[tuple[int, int, int, float]]:
    """Per-axis (axis, in_len, out_len, scale) in MATLAB's processing order."""
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale or size")
    if size is not None:
        out_hw = tuple(int(s) for s in size)
        if len(out_hw) != 2 or min(out_hw) < 1:
            raise ValueError(f"imresize: size must be two positive ints, got {size!r}")
        scales = tuple(o / i for o, i in zip(out_hw, in_hw))
    else:
        scales = tuple(float(s) for s in scale) if isinstance(scale, (tuple, list)) else (float(scale),) * 2
        if len(scales) != 2 or min(scales) <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale!r}")
        out_hw = tuple(int(math.ceil(i * s)) for i, s in zip(in_hw, scales))
    order = sorted(range(2), key=lambda a: scales[a])  # stable: H first on ties
    return [(a, in_hw[a], out_hw[a], scales[a]) for a in order]


def _resize_last_axis(x: torch.Tensor, weights: np.ndarray, ind: np.ndarray) -> torch.Tensor:
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    idx = torch.as_tensor(ind, device=x.device)
    return (x[..., idx] * w).sum(dim=-1)


def imresize(x: torch.Tensor, scale: float | tuple[float, float] | None = None,
             size: tuple[int, int] | None = None, antialias: bool = True) -> torch.Tensor:
    """Bicubic resize of float images (..., C, H, W), as MATLAB `imresize` on double input.

    Exactly one of `scale` (number or (sh, sw); output ``ceil(in * scale)``) and
    `size` ((H, W)) is given. No clamping or rounding: callers quantise.
    """
    if x.dim() < 2:
        raise ValueError(f"imresize: expected (..., H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"imresize: expected a floating tensor, got {x.dtype}; use imresize_uint8 for uint8 arrays")
    for axis, n_in, n_out, s in _plan((x.shape[-2], x.shape[-1]), scale, size):
        weights, ind = contributions(n_in, n_out, s, antialias)
        if axis == 1:
            x = _resize_last_axis(x, weights, ind)
        else:
            x = _resize_last_axis(x.transpose(-1, -2), weights, ind).transpose(-1, -2)
    return x


def imresize_uint8(x: np.ndarray, scale: float | tuple[float, float] | None = None,
                   size: tuple[int, int] | None = None, antialias: bool = True) -> np.ndarray:
    """MATLAB `imresize` on a uint8 HxW or HxWxC array: double arithmetic, uint8 after each pass."""
    if x.dtype != np.uint8 or x.ndim not in (2, 3):
        raise TypeError(f"imresize_uint8: expected a uint8 HxW or HxWxC array, got {x.dtype} {x.shape}")
    out = x
    for axis, n_in, n_out, s in _plan(x.shape[:2], scale, size):
        weights, ind = contributions(n_in, n_out, s, antialias)
        src = np.moveaxis(out.astype(np.float64), axis, 0)  # (n_in, rest...)
        gathered = src[ind]  # (n_out, P, rest...)
        w = weights.reshape(weights.shape + (1,) * (src.ndim - 1))
        res = (gathered * w).sum(axis=1)
        # MATLAB's uint8 conversion: saturate, then round half away from zero.
        out = np.moveaxis(np.floor(np.clip(res, 0, 255) + 0.5).astype(np.uint8), 0, axis)
    return out


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an HxW(xC) array from the top-left so both sides are multiples of `scale`."""
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is smaller than the scale {scale}")
    return img[:h, :w]


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """Standard "BI" LR image: crop HR to a multiple of `scale`, MATLAB imresize by 1/scale, uint8.

    This is the protocol behind the published bicubic benchmark numbers.
    """
    hr = crop_to_multiple(hr, scale)
    return imresize_uint8(hr, 1.0 / scale)
