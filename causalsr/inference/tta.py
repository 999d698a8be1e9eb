"""Test-time augmentation: the 8 dihedral transforms of a tile, with its context box and tokens moved alike."""
from __future__ import annotations

import math

import torch

from causalsr.models.backbone import Box

# (flip left-right first, then rot90 k times over the spatial dims): the 8 dihedral transforms
TTA = tuple((flip, k) for flip in (False, True) for k in range(4))


def transform(x: torch.Tensor, flip: bool, k: int) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if flip else x, k, (-2, -1))


def inverse(x: torch.Tensor, flip: bool, k: int) -> torch.Tensor:
    x = torch.rot90(x, -k, (-2, -1))
    return x.flip(-1) if flip else x


def transform_box(box: Box, flip: bool, k: int) -> Box:
    """Where a tile's box lies in the transformed image (fractions, (top, left, bottom, right))."""
    t, left, b, right = box
    if flip:
        left, right = 1 - right, 1 - left
    for _ in range(k):  # rot90 (counter-clockwise): new row = 1 - old column, new column = old row
        t, left, b, right = 1 - right, t, 1 - left, b
    return (t, left, b, right)


def transform_tokens(tokens: torch.Tensor | None, flip: bool, k: int) -> torch.Tensor | None:
    """Move square-grid context tokens with the image (the restorer reads them as a g x g map)."""
    if tokens is None:
        return None
    b, n, d = tokens.shape
    g = math.isqrt(n)
    if g * g != n:
        return tokens  # the restorer mean-pools non-square token sets: nothing spatial to move
    grid = tokens.transpose(1, 2).reshape(b, d, g, g)
    return transform(grid, flip, k).reshape(b, d, n).transpose(1, 2)
