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

`PatchNoise` adds the view of Chen et al. (ICCV 2015): noise is what is left
in the directions where the image's small patches do not vary. It reads the
harmonic means of the patch covariance's eigenvalues, which the smallest ones
dominate (deviation 43).

Every step is a tensor op on the traced size (a sort and a gather for the
quantiles; slices, matmuls and a Newton-Schulz inverse for the patch
covariance), so an ONNX graph computes the same values at any input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from causalsr.models.block_spectrum import BLOCK, _size, pad_to_at_least

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
        r = pad_to_at_least(r, BLOCK)
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


PATCH = 4
"""Side of the RGB patches whose covariance `PatchNoise` reads (48 dimensions)."""
PATCH_SIDE = 256
"""`PatchNoise` reads the central PATCH_SIDE x PATCH_SIDE pixels at most: the patch matrix is then 12 MB."""
RIDGE = 0.5
"""Added to the covariance's diagonal (grey levels squared): bounds its condition for the inverse."""
NEWTON_STEPS = 32
"""Newton-Schulz steps: each squares the error, from 1 - lambda_min / trace; ample for a condition of 1e8."""
POWERS = (1, 2, 4)


class PatchNoise(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 3): log1p of the patch covariance's harmonic-mean levels (0-255), centred.

    Each 4x4 RGB patch (every position of the central crop) loses its own mean;
    C is the covariance of those 48-vectors plus `RIDGE`. For k in 1, 2, 4 the level
    is (47 / T_k)^(1/2k), T_k the sum of lambda^-k over C's eigenvalues but that of
    the all-ones direction, which the mean removal empties (`traces`): sigma for
    white noise, and the higher k the more it follows the smallest eigenvalues,
    where texture is least. Measured in docs/paper-mapping.md deviation 43.
    """

    out_dim = len(POWERS)
    dims = 3 * PATCH * PATCH
    powers: torch.Tensor  # buffer, registered in __init__

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("powers", torch.tensor(POWERS, dtype=torch.float32), persistent=False)

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 48, L): every 4x4 RGB patch of the central crop, 0-255 units, centred over patches, then each
        patch's own mean removed."""
        x = img * 255.0
        h, w = _size(x, -2), _size(x, -1)
        top, left = torch.clamp((h - PATCH_SIDE) // 2, min=0), torch.clamp((w - PATCH_SIDE) // 2, min=0)
        x = x[..., top:top + PATCH_SIDE, left:left + PATCH_SIDE]
        # inputs under one patch are padded to one (replicated pixels add no noise)
        x = pad_to_at_least(x, PATCH, mode="replicate")
        hh, ww = _size(x, -2) - PATCH + 1, _size(x, -1) - PATCH + 1
        shifted = [x[..., dy:dy + hh, dx:dx + ww] for dy in range(PATCH) for dx in range(PATCH)]
        z = torch.stack(shifted, 2).flatten(1, 2).flatten(2)
        z = z - z.mean(2, keepdim=True)
        return z - z.mean(1, keepdim=True)

    def traces(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3): sum of lambda^-k over C's eigenvalues but the all-ones direction's, k in `POWERS`.

        The mean removal leaves the all-ones direction u empty; C gets s u u^T there (s = its trace, at least
        its largest eigenvalue), so that direction's share, (RIDGE + s)^-k, is small and taken off without
        cancellation. C^-1 comes from Newton-Schulz iterations: matmuls only, so the graph exports."""
        z = self.patches(img)
        eye = torch.eye(self.dims, dtype=z.dtype, device=z.device)
        cov = z @ z.transpose(1, 2) / _size(z, -1).to(z.dtype)
        s = cov.diagonal(dim1=1, dim2=2).sum(1).view(-1, 1, 1) + 1.0
        cov = cov + RIDGE * eye + s / self.dims
        # X0 = I / tr(C): every eigenvalue of C X0 lies in (0, 1], so X <- X (2I - C X) converges to C^-1
        inv = eye / cov.diagonal(dim1=1, dim2=2).sum(1).view(-1, 1, 1)
        for _ in range(NEWTON_STEPS):
            inv = inv @ (2.0 * eye - cov @ inv)
        inv = (inv + inv.transpose(1, 2)) / 2
        inv2 = inv @ inv
        traces = torch.stack([inv.diagonal(dim1=1, dim2=2).sum(1), inv2.diagonal(dim1=1, dim2=2).sum(1),
                              (inv2 * inv2).sum((1, 2))], 1)
        null = (RIDGE + s.view(-1, 1)) ** -self.powers
        return traces - null

    def levels(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3) harmonic-mean noise levels in grey levels: sigma on white noise."""
        return ((self.dims - 1) / self.traces(img).clamp(min=1e-12)) ** (1 / (2 * self.powers))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (torch.log1p(self.levels(img)) - 2.0) / 1.5


__all__ = ["QUANTILES", "NoiseStatistics", "PatchNoise"]
