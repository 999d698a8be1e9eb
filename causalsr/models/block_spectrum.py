"""Block-DCT evidence of the named factors for the degradation posterior, and the JPEG grid it is read on.

`BlockSpectrum` gives the mean |coefficient| of each of the 64 8x8 DCT
frequencies of Y's luminance, on the JPEG grid and on the grid shifted by 4
pixels. JPEG quantisation zeroes high frequencies on its own grid only, noise
lifts all frequencies on both and blur lowers them smoothly, so the three named
factors become visible to a few linear layers (the strided convs alone never
learnt JPEG quality; docs/paper-mapping.md).

Which grid is the JPEG's? An image compressed and then cropped (any crop by a
number of pixels that is not a multiple of 8) has its grid at an offset; read on
the 0-based grid it looks like "no JPEG". `jpeg_grid_offset` finds the offset
from the whole image: on the JPEG's grid many AC coefficients were quantised to
zero and come back near zero after decoding, on every other grid almost none do
(deviation 39 in docs/paper-mapping.md, with the measurement).

Every size-dependent step is written with tensor ops while tracing (ONNX
export), so the graph computes the same values at every input size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 8
GRID_MIN_SIDE = 32
"""Smaller images are read on the 0-based grid: too few blocks to find another one reliably."""
GRID_CAP = 256
"""The grid is found on the top-left GRID_CAP x GRID_CAP pixels at most (about 1,000 blocks per offset)."""
GRID_MARGIN = 1.08
"""The best grid's score must exceed the second best by this factor (BSD100 x4 after a (3, 5) crop: JPEG
images 1.07-3.99, images without JPEG 1.00-1.06; benchmarks/results/jpeg_grid_bsd100.json)."""


def _size(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.shape[dim]`` as a 0-d int64 tensor; while tracing it is the traced size, so the graph keeps it dynamic."""
    size = x.shape[dim]
    return size if isinstance(size, torch.Tensor) else torch.tensor(size)


def pad_to_at_least(x: torch.Tensor, side: int, mode: str = "constant") -> torch.Tensor:
    """`x` padded at the bottom and right to at least `side` x `side` (traceable: sizes stay dynamic)."""
    return F.pad(x, (0, side, 0, side), mode=mode)[..., :torch.clamp(_size(x, -2), min=side),
                                                   :torch.clamp(_size(x, -1), min=side)]


def dct_basis(n: int = BLOCK) -> torch.Tensor:
    """Orthonormal 2-D DCT-II basis as (n*n, 1, n, n) conv filters."""
    k = torch.arange(n, dtype=torch.float64)
    c = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))  # (freq, pos)
    c[0] /= math.sqrt(2.0)
    c *= math.sqrt(2.0 / n)
    return torch.einsum("ux,vy->uvxy", c, c).reshape(n * n, 1, n, n).float()


_LUMA = (0.299, 0.587, 0.114)  # JPEG's own Y: its quantisation acts on exactly this channel


def luminance(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) JPEG luminance."""
    return (img * img.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def grid_scores(luma: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luminance -> (B, 64) score of each grid offset (row-major): the mean of exp(-255 |c|) over
    the AC coefficients of its blocks, read on the top-left `GRID_CAP` pixels."""
    y = luma[..., :GRID_CAP, :GRID_CAP]
    near = torch.exp(-F.conv2d(y, dct_basis().to(y)[1:]).abs() * 255)  # (B, 63, H-7, W-7)
    return torch.stack([near[..., dy::BLOCK, dx::BLOCK].mean((1, 2, 3))
                        for dy in range(BLOCK) for dx in range(BLOCK)], 1)


def jpeg_grid_offset(img: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 2) int64 (row, column) offset of each image's JPEG 8x8 grid.

    Scores each of the 64 offsets by how many AC coefficients of its blocks lie
    near zero (mean of exp(-|c| * 255)), and returns the best one when it beats
    the second best by `GRID_MARGIN`; otherwise (no JPEG, or too small an image)
    (0, 0), the grid every image was read on before.
    """
    if not torch.jit.is_tracing() and min(img.shape[-2:]) < GRID_MIN_SIDE:
        return torch.zeros(img.shape[0], 2, dtype=torch.long, device=img.device)
    y = luminance(img)
    if torch.jit.is_tracing():  # a tiny traced input still needs one block; `small` discards its reading
        y = pad_to_at_least(y, BLOCK, mode="replicate")
    top = grid_scores(y).topk(2, dim=1)
    small = torch.minimum(_size(img, -2), _size(img, -1)) < GRID_MIN_SIDE
    found = (top.values[:, 0] > GRID_MARGIN * top.values[:, 1]) & ~small
    best = torch.where(found, top.indices[:, 0], torch.zeros_like(top.indices[:, 0]))
    return torch.stack([best // BLOCK, best % BLOCK], 1)


def grid_window(img: torch.Tensor, offset: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """Each image of (B, C, H, W) read from its grid origin: rows ``scale * oy`` on, columns ``scale * ox`` on.

    Every window has the same size, ``scale * BLOCK - 1`` smaller than the image on each side (the largest offset
    is 7), so the batch stays one tensor; images under `GRID_MIN_SIDE` (no grid is looked for) keep their size.
    ``scale`` > 1 places the HR image on the LR's grid. A gather, so a traced graph does the same at any size.
    """
    h, w = _size(img, -2), _size(img, -1)
    trim = scale * BLOCK - scale
    small = torch.minimum(h, w) < scale * GRID_MIN_SIDE
    # arange of a 0-d tensor: a traced graph keeps the window's size dynamic (torch's stubs want a number)
    rows = torch.arange(torch.where(small, h, h - trim), device=img.device)[None]  # type: ignore[call-overload]
    cols = torch.arange(torch.where(small, w, w - trim), device=img.device)[None]  # type: ignore[call-overload]
    rows, cols = rows + scale * offset[:, :1], cols + scale * offset[:, 1:]
    b, c = img.shape[0], img.shape[1]
    img = img.gather(2, rows[:, None, :, None].expand(b, c, -1, img.shape[-1]))
    return img.gather(3, cols[:, None, None, :].expand(b, c, img.shape[-2], -1))


class BlockSpectrum(nn.Module):
    """log mean |8x8 DCT coefficient| per frequency, on the aligned and the 4-pixel-shifted grid: (B, 128)."""

    out_dim = 2 * 64
    eps = 1e-4
    basis: torch.Tensor  # buffer, registered in __init__

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", dct_basis(BLOCK), persistent=False)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        y = luminance(img)
        half, need = BLOCK // 2, BLOCK + BLOCK // 2
        if torch.jit.is_tracing():  # the same padding with constant widths and a traced end, for any size
            h, w = _size(y, -2), _size(y, -1)
            y = F.pad(y, (0, need, 0, need), mode="replicate")[..., :torch.clamp(h, min=need),
                                                                :torch.clamp(w, min=need)]
        elif y.shape[-2] < need or y.shape[-1] < need:  # tiny inputs: replicate up to one shifted block
            y = F.pad(y, (0, max(0, need - y.shape[-1]), 0, max(0, need - y.shape[-2])), mode="replicate")
        feats = [F.conv2d(y[..., o:, o:], self.basis, stride=BLOCK).abs().mean((-2, -1)) for o in (0, half)]
        # log-magnitudes of 0-1 images lie in about [-9, -1]; centre them near 0 for the MLP.
        return (torch.log(torch.cat(feats, 1) + self.eps) + 5.0) / 2.0


__all__ = ["BlockSpectrum", "dct_basis", "grid_scores", "grid_window", "jpeg_grid_offset", "luminance"]
