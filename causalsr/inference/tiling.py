"""Tiled inference with overlap and seam-free blending, in bounded memory.

The LR image is cut into a grid of `tile` x `tile` tiles that overlap by at
least `overlap` pixels. Each tile's output is weighted by a separable blending
window and accumulated; the windows are normalised per axis so they sum to
exactly one at every output pixel, so no final division is needed.

Why these windows: near a tile's border the network sees padding instead of
the neighbouring pixels, so its output there is wrong within its receptive
field. Each window is zero on the outer quarter of every overlap, rises with
a cosine ramp over the middle half and is one elsewhere. Outputs within a
quarter-overlap of a tile edge therefore never count, and a network whose
receptive-field radius is below `overlap / 4` gives tiled output identical to
untiled output up to float rounding; wider receptive fields are blended
smoothly instead of cut.

Memory: only one strip of tile rows is held in float32; rows that no later
tile touches are quantised straight into the preallocated output array.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch

from causalsr.models.backbone import Box  # (top, left, bottom, right) of a tile as fractions of the whole LR image

TileFn = Callable[[torch.Tensor, Box], torch.Tensor]

MIN_TILE = 64
MAX_TILE = 512


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: stride `tile - overlap`, the last tile flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    starts.append(length - tile)
    return starts


def blend_weights(starts: list[int], tile: int, length: int, overlap: int, scale: int) -> list[np.ndarray]:
    """Per-tile 1-D output-space weights along one axis; at every output position they sum to 1."""
    t_out = min(tile, length) * scale
    ov = overlap * scale
    margin = ov * 3 // 8
    ramp_len = ov - 2 * margin
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp_len) + 0.5) / max(ramp_len, 1))
    rise = np.concatenate([np.zeros(margin), ramp, np.ones(t_out - margin - ramp_len)])
    weights = []
    for i in range(len(starts)):
        w = np.ones(t_out)
        if i > 0:
            w *= rise
        if i < len(starts) - 1:
            w *= rise[::-1]
        weights.append(w)
    total = np.zeros(length * scale)
    for s, w in zip(starts, weights):
        total[s * scale:s * scale + t_out] += w
    return [(w / total[s * scale:s * scale + t_out]).astype(np.float32) for s, w in zip(starts, weights)]


def _store(dst: np.ndarray, src: np.ndarray) -> None:
    """Float [0, 1] rows -> `dst` rows in its dtype (uint8/uint16 rounded, float clipped)."""
    np.clip(src, 0.0, 1.0, out=src)
    if dst.dtype == np.float32:
        dst[...] = src
    else:
        peak = float(np.iinfo(dst.dtype).max)
        dst[...] = np.floor(src * peak + 0.5)


def tiled_apply(fn: TileFn, lr: torch.Tensor, scale: int, tile: int | None, overlap: int,
                out: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Run `fn` over overlapping tiles of `lr` and blend the results into `out`.

    Args:
        fn: maps an LR tile (1, 3, h, w) and its box (fractions of the whole
            image) to the SR tile (1, 3, scale*h, scale*w), float in [0, 1].
        lr: the whole LR image (1, 3, H, W).
        scale: the SR factor.
        tile: tile side in LR pixels; None processes the image in one piece.
        overlap: minimum overlap between neighbouring tiles, in LR pixels; at
            most half the tile.
        out: preallocated (scale*H, scale*W, 3) array, uint8, uint16 (rounded)
            or float32 (clipped to [0, 1]); filled in place and returned.
        progress: called with 1 after each tile.
    """
    _, _, h, w = lr.shape
    if out.shape != (h * scale, w * scale, 3):
        raise ValueError(f"output array has shape {out.shape}, expected {(h * scale, w * scale, 3)}")
    tile = max(h, w) if tile is None else int(tile)
    if tile < 1 or overlap < 0 or 2 * overlap > tile:
        raise ValueError(f"need tile >= 1 and 0 <= tile_overlap <= tile / 2, got tile {tile}, overlap {overlap}")
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    wys, wxs = blend_weights(ys, tile, h, overlap, scale), blend_weights(xs, tile, w, overlap, scale)
    th, tw = min(tile, h), min(tile, w)
    acc = np.zeros((0, w * scale, 3), np.float32)
    acc_y0 = 0  # output row of acc[0]
    for i, y in enumerate(ys):
        oy0, oy1 = y * scale, (y + th) * scale
        if oy1 - acc_y0 > acc.shape[0]:
            acc = np.concatenate([acc, np.zeros((oy1 - acc_y0 - acc.shape[0], w * scale, 3), np.float32)])
        for j, x in enumerate(xs):
            box = (y / h, x / w, (y + th) / h, (x + tw) / w)
            sr = fn(lr[..., y:y + th, x:x + tw], box)[0].detach().float().cpu().permute(1, 2, 0).numpy()
            weight = wys[i][:, None, None] * wxs[j][None, :, None]
            acc[oy0 - acc_y0:oy1 - acc_y0, x * scale:(x + tw) * scale] += sr * weight
            if progress is not None:
                progress(1)
        # rows above the next tile row are final: quantise them out and drop them
        done = ys[i + 1] * scale if i + 1 < len(ys) else h * scale
        _store(out[acc_y0:done], acc[:done - acc_y0])
        acc = acc[done - acc_y0:].copy()
        acc_y0 = done
    return out


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable; sysconf as a fallback)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2 << 30


def auto_tile_size(bytes_per_lr_pixel: float, budget: int | None = None, max_tile: int = MAX_TILE) -> int:
    """Largest tile side (multiple of 16, within [MIN_TILE, max_tile]) whose activations fit `budget` bytes.

    The default budget is a quarter of the available memory, at most 1 GiB,
    which keeps a whole 2000x1500 -> x4 run well under 4 GB of RSS; the
    upper cap keeps per-tile latency (and progress granularity) reasonable.
    A GPU passes its own budget (its free memory) and a larger cap.
    """
    if budget is None:
        budget = min(available_memory() // 4, 1 << 30)
    side = int(math.sqrt(max(budget, 0) / bytes_per_lr_pixel)) // 16 * 16
    return max(MIN_TILE, min(max_tile, side))


__all__ = ["tiled_apply", "tile_starts", "blend_weights", "available_memory", "auto_tile_size", "Box"]
