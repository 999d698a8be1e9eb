"""Whole-image noise evidence for the degradation posterior: quantiles of block noise levels.

The posterior's conv features are averaged over the image, so texture and noise
add up in them and a sigma-5 noise read as about 2 (issue 17; session 9's
`benchmarks/results/analyze_accuracy_x4.json`, commit 690feb8). Classical estimators look where
the image is flat instead. This module gives the posterior that view: each
channel's second-difference residual (Immerkaer's 3x3 mask, scaled so white
noise of sigma s gives a residual of sd s), its RMS in every 8x8 block, and
quantiles of those block levels over the whole image. The low quantiles come
from the flattest blocks and track sigma; the high ones measure texture, which
the posterior's head learns to discount (docs/paper-mapping.md deviation 42).

Every step is a tensor op on the traced size (a sort and a gather for the
quantiles), so an ONNX graph computes the same values at any input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from causalsr.models.block_spectrum import BLOCK, _size

QUANTILES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
# Immerkaer (1996): this mask has gain 36 on the variance of white noise; /6 makes it 1 on the sd.
_MASK = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]) / 6.0


class NoiseStatistics(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, len(QUANTILES)): log1p of block noise-level quantiles (0-255 units), centred."""

    out_dim = len(QUANTILES)
    mask: torch.Tensor  # buffers, registered in __init__
    levels: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", _MASK.view(1, 1, 3, 3), persistent=False)
        self.register_buffer("levels", torch.tensor(QUANTILES), persistent=False)

    def block_levels(self, img: torch.Tensor) -> torch.Tensor:
        """(B, N) RMS of the residual in every 8x8 block of every channel, 0-255 units."""
        b, c = img.shape[:2]
        x = F.pad(img.reshape(b * c, 1, *img.shape[-2:]) * 255.0, (1, 1, 1, 1), mode="replicate")
        r = F.conv2d(x, self.mask)  # the input's size again
        # images under one block are padded to one (their padding adds no residual)
        r = F.pad(r, (0, BLOCK, 0, BLOCK))[..., :torch.clamp(_size(r, -2), min=BLOCK),
                                           :torch.clamp(_size(r, -1), min=BLOCK)]
        return F.avg_pool2d(r * r, BLOCK).sqrt().reshape(b, -1)

    def quantiles(self, img: torch.Tensor) -> torch.Tensor:
        """(B, len(QUANTILES)) block noise levels at `QUANTILES` (nearest rank), 0-255 units."""
        ordered, _ = torch.sort(self.block_levels(img), dim=1)
        last = _size(ordered, -1) - 1
        idx = torch.floor(self.levels * last.to(self.levels.dtype)).long()
        return ordered.gather(1, idx.view(1, -1).expand(ordered.shape[0], -1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        # log1p of 0-50 grey levels lies in [0, 4]; centre it near 0 for the MLP
        return (torch.log1p(self.quantiles(img)) - 2.0) / 1.5


__all__ = ["QUANTILES", "NoiseStatistics"]
