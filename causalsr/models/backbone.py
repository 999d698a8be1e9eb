"""Restorers R(Y, Z, C) -> X_hat (Fig. 2 (a)-(c), Table I), registry `BACKBONES`.

Every restorer has ``forward(lr (B,3,h,w), cond (B,cond_dim), ctx_tokens (B,N,ctx_dim) | None,
ctx_box=None) -> sr (B,3,s*h,s*w)`` for s in {2, 3, 4, 8} and any h, w.
`cond` is [Z, pooled C]; `ctx_tokens` are SCT's spatial context tokens C.
Both condition every decoder level (`LevelConditioning`):

- FiLM: x * (1 + gamma) + beta, gamma and beta from an MLP on `cond`;
- context: tokens reshaped to their g x g grid (N = g*g; otherwise mean-pooled
  to 1x1), projected to the level's channels, bilinearly resized to the
  feature map and added.

The per-level heads start at zero, so conditioning starts as the identity.

With `factor_maps` = k > 0 the first k entries of `cond` (the named factors of
Z: blur, noise, JPEG) are also broadcast to k constant maps and concatenated to
the input image, as SRMD and FFDNet feed their degradation maps: a path the
first convolution cannot switch off, since its gradient is the map itself.
`trunk` "silu" makes the shared trunks Linear + SiLU; "relu" (the default, kept
so earlier checkpoints load) died in every trained model (all units <= 0 for
every input: issue 13).
`ctx_box` = (top, left, bottom, right) as fractions of the whole image says
which part of the image `lr` is (tiled inference): the context map is then
sampled at that region's positions instead of being stretched over the tile.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from causalsr.registry import Registry

BACKBONES = Registry("backbone")

Box = tuple[float, float, float, float]  # (top, left, bottom, right) as fractions of the whole image


_Layer = TypeVar("_Layer", nn.Conv2d, nn.Linear)


def zero_init(conv: _Layer) -> _Layer:
    """Zero a residual branch's last conv (or linear layer) so the branch starts as nothing (kept through
    Xavier init).

    With every residual branch and the output conv at zero, a restorer starts
    as exactly the bicubic upsampling; measured with `benchmarks/restorer_probe.py`
    (Set5 x4 after 300 steps): 29.94 dB with this, 28.93 dB with Xavier everywhere.
    """
    assert conv.bias is not None  # a residual branch's last conv has a bias
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    conv.keep_init = True  # type: ignore[assignment]  # a plain flag; torch types Module attributes as Tensor | Module
    return conv


def _bicubic_up(lr: torch.Tensor, scale: int) -> torch.Tensor:
    # plain torch bicubic (align_corners=False): exportable to ONNX
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def _resize_map(m: torch.Tensor, size: tuple[int, ...], box: Box | None) -> torch.Tensor:
    """Bilinear resize of a context map to `size`; with `box`, sample only that region of it."""
    if box is None:
        if m.shape[-2:] == (1, 1):
            return m  # broadcasts
        return F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    top, left, bottom, right = box
    h, w = size
    # pixel centres of the region in grid_sample's [-1, 1] coordinates (align_corners=False)
    ys = -1 + 2 * (top + (bottom - top) * (torch.arange(h, device=m.device, dtype=m.dtype) + 0.5) / h)
    xs = -1 + 2 * (left + (right - left) * (torch.arange(w, device=m.device, dtype=m.dtype) + 0.5) / w)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(m.shape[0], h, w, 2)
    return F.grid_sample(m, grid, mode="bilinear", padding_mode="border", align_corners=False)


TRUNKS: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(inplace=True), "silu": nn.SiLU}


def with_factor_maps(img: torch.Tensor, cond: torch.Tensor, k: int) -> torch.Tensor:
    """`img` with the first `k` entries of `cond` appended as constant channels (SRMD-style maps)."""
    if k == 0:
        return img
    maps = cond[:, :k, None, None].to(img.dtype).expand(img.shape[0], k, *img.shape[-2:])
    return torch.cat([img, maps], dim=1)


class Conditioning(nn.Module):
    """Shared trunks: cond -> hidden vector; ctx tokens -> hidden map on the token grid."""

    def __init__(self, cond_dim: int, ctx_dim: int, hidden: int, trunk: str = "relu"):
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"backbone trunk must be one of {', '.join(TRUNKS)}, got {trunk!r}")
        self.cond = nn.Sequential(nn.Linear(cond_dim, hidden), TRUNKS[trunk]())
        self.ctx = nn.Sequential(nn.Linear(ctx_dim, hidden), TRUNKS[trunk]())

    def forward(self, cond: torch.Tensor, ctx_tokens: torch.Tensor | None):
        h = self.cond(cond)
        if ctx_tokens is None:
            return h, None
        t = self.ctx(ctx_tokens)  # (B, N, hidden)
        g = math.isqrt(t.shape[1])
        if g * g == t.shape[1]:
            m = t.transpose(1, 2).reshape(t.shape[0], -1, g, g)
        else:
            m = t.mean(dim=1)[:, :, None, None]
        return h, m


class LevelConditioning(nn.Module):
    """FiLM from the cond vector plus the projected, resized context map, for one level."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.film = nn.Linear(hidden, 2 * channels)
        self.ctx = nn.Conv2d(hidden, channels, 1)
        for layer in (self.film, self.ctx):  # identity at initialisation
            assert layer.bias is not None  # both built with a bias
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            layer.keep_init = True  # type: ignore[assignment]  # CausalSR's Xavier initialisation leaves it alone

    def forward(self, x: torch.Tensor, h: torch.Tensor, ctx_map: torch.Tensor | None,
                box: Box | None = None) -> torch.Tensor:
        gamma, beta = self.film(h)[:, :, None, None].chunk(2, dim=1)
        x = x * (1 + gamma) + beta
        if ctx_map is not None:
            x = x + _resize_map(self.ctx(ctx_map), x.shape[-2:], box)
        return x


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.conv2 = zero_init(nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.cond = LevelConditioning(n_feats, hidden)

    def forward(self, x, h, ctx_map, box):
        return x + self.cond(self.conv2(F.relu(self.conv1(x), inplace=True)), h, ctx_map, box)


@BACKBONES.register("efficient")
class EfficientRestorer(nn.Module):
    """LR-space residual CNN (EDSR-baseline-like), the shipped default.

    head 3x3 conv -> `n_blocks` residual blocks (conv-ReLU-conv, then FiLM +
    context) -> 3x3 body conv + long skip -> conv to 3*s^2 and PixelShuffle(s)
    (one shot, x8 too) -> + bicubic(LR) as the global residual.

    Args:
        scale: 2, 3, 4 or 8.
        cond_dim: width of `cond` ([Z, pooled C]; 8 + 256 by default).
        ctx_dim: width of the context tokens (SCT's d).
        n_feats: feature channels (48).
        n_blocks: residual blocks (8).
        cond_hidden: width of the shared conditioning trunks (32).
        factor_maps: leading `cond` entries also fed as input maps (0 = none; 3 = the named factors).
        trunk: activation of the shared trunks, "relu" or "silu".
    """

    def __init__(self, scale: int = 4, cond_dim: int = 264, ctx_dim: int = 256, n_feats: int = 48,
                 n_blocks: int = 8, cond_hidden: int = 32, factor_maps: int = 0, trunk: str = "relu"):
        super().__init__()
        self.scale = scale
        self.factor_maps = factor_maps
        self.conditioning = Conditioning(cond_dim, ctx_dim, cond_hidden, trunk)
        self.head = nn.Conv2d(3 + factor_maps, n_feats, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(n_feats, cond_hidden) for _ in range(n_blocks))
        self.body = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.upsample = nn.Sequential(zero_init(nn.Conv2d(n_feats, 3 * scale * scale, 3, padding=1)),
                                      nn.PixelShuffle(scale))

    def forward(self, lr: torch.Tensor, cond: torch.Tensor, ctx_tokens: torch.Tensor | None = None,
                ctx_box: Box | None = None) -> torch.Tensor:
        h, ctx_map = self.conditioning(cond, ctx_tokens)
        x = feat = self.head(with_factor_maps(lr, cond, self.factor_maps))
        for block in self.blocks:
            x = block(x, h, ctx_map, ctx_box)
        x = self.body(x) + feat
        return self.upsample(x) + _bicubic_up(lr, self.scale)


TABLE_I_ENCODER = (64, 128, 256, 512, 1024)
TABLE_I_DECODER = (512, 256, 128, 64)


def _conv_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


@BACKBONES.register("tablei")
class TableIRestorer(nn.Module):
    """The paper's Table I encoder-decoder, conditioned on Z and C at every decoder level.

    Input is the bicubic-upsampled LR (pre-upsampling: the paper leaves the
    upsampler unspecified and Table I works at H x W). Encoder: 5 levels of
    two 3x3 conv + ReLU with 64, 128, 256, 512, 1024 channels (x `width`);
    the first conv of levels 2-5 has stride 2. Decoder: 4 levels, each a 4x4
    stride-2 transposed conv + ReLU and two 3x3 conv + ReLU, 512, 256, 128, 64
    channels, then FiLM + context; no skip connections. Output 3x3 conv to 3
    channels plus the bicubic input (global residual). Sizes that are not a
    multiple of 16 are reflect-padded and cropped back.

    Args:
        scale: 2, 3, 4 or 8.
        cond_dim, ctx_dim: as for `EfficientRestorer`.
        width: channel multiplier (1.0 = Table I).
        cond_hidden: width of the shared conditioning trunks (64).
        factor_maps, trunk: as for `EfficientRestorer`.
    """

    def __init__(self, scale: int = 4, cond_dim: int = 264, ctx_dim: int = 256, width: float = 1.0,
                 cond_hidden: int = 64, factor_maps: int = 0, trunk: str = "relu"):
        super().__init__()
        self.scale = scale
        self.factor_maps = factor_maps
        enc = [max(1, round(c * width)) for c in TABLE_I_ENCODER]
        dec = [max(1, round(c * width)) for c in TABLE_I_DECODER]
        self.conditioning = Conditioning(cond_dim, ctx_dim, cond_hidden, trunk)
        levels, c_in = [], 3 + factor_maps
        for i, c in enumerate(enc):
            levels.append(nn.Sequential(_conv_relu(c_in, c, stride=1 if i == 0 else 2), _conv_relu(c, c)))
            c_in = c
        self.encoder = nn.Sequential(*levels)
        self.decoder = nn.ModuleList()
        self.dec_cond = nn.ModuleList()
        for c in dec:
            self.decoder.append(nn.Sequential(nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1),
                                              nn.ReLU(inplace=True), _conv_relu(c, c), _conv_relu(c, c)))
            self.dec_cond.append(LevelConditioning(c, cond_hidden))
            c_in = c
        self.output = zero_init(nn.Conv2d(c_in, 3, 3, padding=1))

    def forward(self, lr: torch.Tensor, cond: torch.Tensor, ctx_tokens: torch.Tensor | None = None,
                ctx_box: Box | None = None) -> torch.Tensor:
        h, ctx_map = self.conditioning(cond, ctx_tokens)
        up = _bicubic_up(lr, self.scale)
        H, W = up.shape[-2:]
        ph, pw = -H % 16, -W % 16
        if ctx_box is not None and (ph or pw):  # the padded canvas reaches past the region
            top, left, bottom, right = ctx_box
            ctx_box = (top, left, bottom + (bottom - top) * ph / H, right + (right - left) * pw / W)
        if ph or pw:  # reflect unless the image is smaller than the padding
            up_p = F.pad(up, (0, pw, 0, ph), mode="reflect" if ph < H and pw < W else "replicate")
        else:
            up_p = up
        x = self.encoder(with_factor_maps(up_p, cond, self.factor_maps))
        for level, cond_level in zip(self.decoder, self.dec_cond):
            x = cond_level(level(x), h, ctx_map, ctx_box)
        return self.output(x)[..., :H, :W] + up


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a registered restorer by name; kwargs go to its constructor."""
    return BACKBONES.get(name)(**kwargs)
