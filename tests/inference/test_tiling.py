"""Tiled inference: blending weights, seam-free stitching, bounded memory."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from causalsr.inference.tiling import auto_tile_size, available_memory, blend_weights, tile_starts, tiled_apply
from causalsr.metrics.psnr_ssim import psnr
from helpers import photo


class LocalSR(nn.Module):
    """Stand-in restorer: receptive-field radius 2 (two 3x3 convs), sub-pixel upsampling."""

    def __init__(self, scale: int):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
                                  nn.PixelShuffle(scale))
        self.scale = scale

    def forward(self, x):
        up = nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")
        return up + 0.1 * self.body(x)


def _float_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("length,tile,overlap", [(512, 128, 16), (100, 32, 8), (33, 32, 16), (20, 64, 16)])
def test_starts_cover_and_weights_sum_to_one(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    for scale in (1, 3):
        total = np.zeros(length * scale)
        for s, w in zip(starts, blend_weights(starts, tile, length, overlap, scale)):
            total[s * scale:s * scale + len(w)] += w
        np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_no_seams_with_local_model():
    """Receptive field below a quarter of the overlap: tiled == untiled up to float rounding."""
    scale = 2
    model = LocalSR(scale).eval()
    rng = np.random.default_rng(0)
    lr = torch.from_numpy(rng.random((1, 3, 512, 512), dtype=np.float32))
    fn = lambda tile, box: model(tile)  # noqa: E731
    whole, tiled = (np.empty((1024, 1024, 3), np.float32) for _ in range(2))
    calls = []
    with torch.no_grad():
        tiled_apply(fn, lr, scale, None, 0, whole)
        tiled_apply(fn, lr, scale, 128, 16, tiled, progress=calls.append)
    assert len(calls) == 25
    assert _float_psnr(whole, tiled) >= 100
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_boxes_and_integer_outputs():
    """Boxes are the tiles' positions; uint8/uint16 outputs are rounded from the same blend."""
    lr = torch.rand(1, 3, 40, 70)
    boxes = []

    def fn(tile, box):
        boxes.append(box)
        return tile.repeat_interleave(3, -1).repeat_interleave(3, -2)

    ref = np.empty((120, 210, 3), np.float32)
    tiled_apply(fn, lr, 3, 24, 8, ref)
    np.testing.assert_allclose(ref, lr[0].permute(1, 2, 0).repeat_interleave(3, 0).repeat_interleave(3, 1), atol=1e-6)
    assert boxes[0] == (0.0, 0.0, 24 / 40, 24 / 70) and boxes[-1][2:] == (1.0, 1.0)
    for dtype in (np.uint8, np.uint16):
        out = tiled_apply(fn, lr, 3, 24, 8, np.empty((120, 210, 3), dtype))
        peak = np.iinfo(dtype).max
        np.testing.assert_array_equal(out, np.floor(ref * peak + 0.5).astype(dtype))


def test_bad_arguments():
    lr = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="tile_overlap"):
        tiled_apply(lambda t, b: t, lr, 1, 16, 9, np.empty((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        tiled_apply(lambda t, b: t, lr, 2, 16, 0, np.empty((16, 16, 3), np.float32))


def test_auto_tile_size():
    assert available_memory() > 0
    assert auto_tile_size(1000.0, budget=64 << 20) == 256  # sqrt(64 MiB / 1000 B) = 259 -> 256
    assert auto_tile_size(1e9, budget=1 << 20) == 64  # never below the minimum
    assert auto_tile_size(1.0, budget=1 << 40) == 512  # never above the maximum
    assert auto_tile_size(2000.0) % 16 == 0


def test_real_causalsr_tiled_matches_untiled():
    """512x512 input in 128-px tiles with a small random CausalSR: >= 50 dB against the untiled output."""
    from causalsr.inference.api import Upscaler
    from causalsr.models.causalsr import CausalSR
    from causalsr.models.config import ModelConfig

    torch.manual_seed(0)
    model = CausalSR(ModelConfig(scale=2, backbone_args=dict(n_feats=8, n_blocks=2, cond_hidden=8), z_dim=4,
                                 posterior_feats=8, semantic_args=dict(pretrained=False, input_size=64), sct_dim=16,
                                 sct_heads=2, prior_hidden=8, mechanism_feats=4, intervention_hidden=8, contrast_dim=8))
    for name, p in model.restorer.named_parameters():  # make Z and the spatial context matter
        if ".cond." in name:
            nn.init.normal_(p, std=0.1)
    up = Upscaler(model)
    img = photo(512, 512)
    whole = up.upscale(img, tile=None)
    tiled = up.upscale(img, tile=128, tile_overlap=16)
    assert whole.shape == tiled.shape == (1024, 1024, 3)
    assert (whole == tiled).all() or psnr(whole, tiled, y=False) >= 50
