"""Degradation posterior q_phi(Z | X, Y) with a full covariance (paper Eq. 2).

One encoder serves both training and inference (DESIGN Component 1): the HR
branch's features are replaced by a learned "unknown" embedding when X is not
given (inference, and at random per training sample), so ``q(Z | Y)`` is the
inference posterior and ``q(Z | X, Y)`` stays differentiable in X, as
Algorithm 1 line 2 (d KL / dX) requires.

Large LR images are analysed on full-resolution crops rather than on a
downscaled copy: resampling changes the very factors Z measures (it divides
the noise sigma and the blur sigma by the resampling factor and smears the
8x8 JPEG grid), while a crop keeps them exactly. Crops start on multiples of 8
so JPEG blocks stay aligned, and the pooled features are averaged over crops.
By default an LR image longer than ``max_side`` gets 2x2 crops of 128 pixels;
``analysis_crop`` instead analyses up to 8x8 crops of that size, which should be
the LR training-patch size: pooled features of a 24x24 patch and of a whole
image differ (border effects), and the head only ever saw the former.

Optionally (``spectrum=True``) the pooled features also receive the
block-DCT spectrum of Y's luminance (`causalsr.models.block_spectrum`). With
``grid_align=True`` every image is read (outside training) from the origin of the JPEG grid found
in it, so a JPEG cropped after compression still reads as one. With
``noise_stats=True`` the pooled features also receive quantiles of the whole
image's block noise levels (`causalsr.models.noise_stats`).

Tracing (ONNX export): the crop rule and the spectrum's padding of tiny inputs
depend on the input size, which a trace would freeze. While tracing, both are
computed from the traced size with tensor ops instead (a fixed set of crop
slots with data-dependent starts, a mask and a weighted mean; constant
replicate padding and a data-dependent slice), which computes the same values
at every size. Eager PyTorch keeps the direct form.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import MultivariateNormal

from causalsr.models.backbone import zero_init
from causalsr.models.block_spectrum import BlockSpectrum, _size, grid_window, jpeg_grid_offset
from causalsr.models.noise_stats import NoiseStatistics, PatchNoise


def _branch(in_ch: int, n_feats: int) -> nn.Sequential:
    """One full-resolution conv (keeps high frequencies: noise, JPEG edges), then two strided convs."""
    return nn.Sequential(
        nn.Conv2d(in_ch, n_feats, 3, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(n_feats, n_feats, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(n_feats, n_feats, 3, stride=2, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _mlp(in_dim: int, out_dim: int, hidden: int | None = None, zero_last: bool = False) -> nn.Sequential:
    """Linear -> LeakyReLU(0.2) -> Linear, with ``2 * out_dim`` hidden units unless given; ``zero_last``
    starts the last layer at zero (`zero_init`)."""
    hidden = 2 * out_dim if hidden is None else hidden
    last = nn.Linear(hidden, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(0.2, inplace=True),
                         zero_init(last) if zero_last else last)


class ResidualConv(nn.Module):
    """x + conv(lrelu(conv(x))) at full resolution; the second conv starts at zero, so adding blocks to a
    trained posterior leaves its output unchanged until they are trained."""

    def __init__(self, n_feats: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            zero_init(nn.Conv2d(n_feats, n_feats, 3, padding=1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DegradationPosterior(nn.Module):
    """q_phi(Z | X, Y) = N(mu_phi(X, Y), Sigma_phi(X, Y)), Sigma = L L^T (paper Eq. 2).

    Args:
        scale: SR factor (2, 3, 4, 8); X is pixel-unshuffled by it onto Y's grid.
        z_dim: latent dimensions; the first ``N_NAMED`` are the named factors.
        n_feats: feature width, also the size of :meth:`embed`'s output.
        p_unknown: training-time probability, per sample, that X's features are
            replaced by the learned "unknown" embedding (so q(Z | Y) is learnt).
        spectrum: add the :class:`BlockSpectrum` of Y to the pooled features.
        analysis_crop: crop size (LR pixels, a multiple of 8) for analysing
            inputs larger than it; 0 keeps the default crops described above.
        lr_depth: residual blocks (:class:`ResidualConv`) after the LR branch's
            full-resolution conv; 0 is the paper-sized encoder. Added to see
            finer evidence (the paper's mild 3x3 blur); measured, 8 blocks did
            not (docs/paper-mapping.md deviation 34).
        grid_align: outside training, read each image from the origin of its JPEG grid
            (`jpeg_grid_offset`, `grid_window`), not from pixel (0, 0) (deviation 39).
        noise_stats: add an MLP of :class:`NoiseStatistics` of the whole image to the pooled
            features; its last layer starts at zero, so adding it to a trained posterior changes
            nothing until it is trained (deviation 42).
        patch_noise: likewise an MLP of :class:`PatchNoise`, the whole image's patch-covariance
            noise levels (deviation 43).

    Cost: three 3x3 convs per branch (plus 2 per ``lr_depth`` block), two of
    them strided, a 1x1 + 3x3 fusion and a 2-layer MLP; an LR image longer
    than ``max_side`` is analysed on ``crops_per_axis**2`` crops of
    ``crop_size`` pixels.
    """

    max_side = 256
    crop_size = 128
    crops_per_axis = 2
    max_analysis_crops_per_axis = 8
    diag_floor = 1e-3

    def __init__(
        self, scale: int = 4, z_dim: int = 8, n_feats: int = 32, p_unknown: float = 0.5, spectrum: bool = False,
        analysis_crop: int = 0, lr_depth: int = 0, grid_align: bool = False, noise_stats: bool = False,
        patch_noise: bool = False,
    ):
        super().__init__()
        if not 0.0 <= p_unknown <= 1.0:
            raise ValueError(f"p_unknown must be in [0, 1], got {p_unknown}")
        if analysis_crop < 0 or analysis_crop % 8:
            raise ValueError(f"analysis_crop must be 0 or a positive multiple of 8, got {analysis_crop}")
        self.analysis_crop = analysis_crop
        self.grid_align = grid_align
        self.scale = scale
        self.z_dim = z_dim
        self.n_feats = n_feats
        self.p_unknown = p_unknown
        if lr_depth < 0:
            raise ValueError(f"lr_depth must be >= 0, got {lr_depth}")
        # The LR branch, split where the residual blocks go: lr_stem (full resolution), lr_blocks, lr_down.
        lr_branch = list(_branch(3, n_feats))
        self.lr_stem, self.lr_down = nn.Sequential(*lr_branch[:2]), nn.Sequential(*lr_branch[2:])
        self.lr_blocks = nn.Sequential(*(ResidualConv(n_feats) for _ in range(lr_depth)))
        self.hr_branch = _branch(3 * scale * scale, n_feats)
        self.unknown = nn.Parameter(torch.zeros(n_feats))
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * n_feats, n_feats, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.spectrum = None
        if spectrum:
            self.spectrum = BlockSpectrum()
            self.spectrum_mlp = _mlp(BlockSpectrum.out_dim, n_feats)
        self.noise_stats = None
        if noise_stats:
            self.noise_stats = NoiseStatistics()
            self.noise_mlp = _mlp(NoiseStatistics.out_dim, n_feats, zero_last=True)
        self.patch_noise = None
        if patch_noise:
            self.patch_noise = PatchNoise()
            self.patch_noise_mlp = _mlp(PatchNoise.out_dim, n_feats, zero_last=True)
        n_tril = z_dim * (z_dim + 1) // 2
        self.head = _mlp(n_feats, z_dim + n_tril, hidden=2 * n_feats)
        rows, cols = torch.tril_indices(z_dim, z_dim, offset=-1)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)

    @property
    def embed_dim(self) -> int:
        return self.n_feats

    def _crop_offsets(self, size: int, crop: int, per_axis: int) -> list[int]:
        """Evenly spread crop starts on multiples of 8 (JPEG-aligned), at most ``per_axis``, ending at the edge."""
        if size <= crop:
            return [0]
        n = min(per_axis, math.ceil(size / crop))
        last = size - crop
        return sorted({int(last * k / (n - 1)) // 8 * 8 for k in range(n)})

    @staticmethod
    def _crop_slots(size: torch.Tensor, crop: int, per_axis: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_crop_offsets` as tensor ops on a 0-d size: ``per_axis`` slots (starts, keep).

        ``starts[keep]`` equals ``_crop_offsets(size, crop, per_axis)`` (ascending, distinct); the other slots
        start at 0 or repeat a start, so every slot's crop has the size of the real ones.
        """
        k = torch.arange(per_axis)
        n = torch.clamp((size + crop - 1) // crop, max=per_axis)  # 1 when size <= crop
        last = torch.clamp(size - crop, min=0)
        # floor(last * k / (n - 1)) in integers equals int() of the float quotient for any realistic size
        starts = torch.where(k < n, last * k // torch.clamp(n - 1, min=1) // 8 * 8, 0)
        first = torch.ones(1, dtype=torch.bool)
        keep = (k < n) & torch.cat([first, starts[1:] != starts[:-1]])  # starts ascend: keep each first
        return starts, keep

    def _pooled_traceable(self, lr: torch.Tensor, hr: torch.Tensor | None, drop_hr: torch.Tensor | None,
                          crop: int, per_axis: int) -> torch.Tensor:
        """Mean pooled features over the crops of :meth:`_crops`, with no Python control flow on the size.

        All ``per_axis**2`` crop slots are analysed; the mean is weighted by ``keep``, so unused and repeated
        slots count for nothing. With ``whole_up_to == crop`` (``analysis_crop``) an image no longer than
        ``crop`` is one slot holding the whole image, as in :meth:`_crops`.
        """
        b, s = lr.shape[0], self.scale
        ys, keep_y = self._crop_slots(_size(lr, -2), crop, per_axis)
        xs, keep_x = self._crop_slots(_size(lr, -1), crop, per_axis)
        slots = [(ys[i], xs[j]) for i in range(per_axis) for j in range(per_axis)]
        # slicing ends past the edge stop at it: a side shorter than `crop` is taken whole, as min(h, crop) does
        lr_c = torch.stack([lr[..., y:y + crop, x:x + crop] for y, x in slots], 1).flatten(0, 1)
        hr_c = None
        if hr is not None:
            hr_c = torch.stack([hr[..., s * y:s * (y + crop), s * x:s * (x + crop)] for y, x in slots],
                               1).flatten(0, 1)
        n = per_axis * per_axis
        weight = (keep_y[:, None] & keep_x[None, :]).flatten().to(device=lr.device, dtype=lr.dtype)
        pooled = self._crop_features(lr_c, hr_c, drop_hr, n).view(b, n, -1)
        return (pooled * weight[None, :, None]).sum(1) / weight.sum()

    def _embed_traceable(self, lr: torch.Tensor, hr: torch.Tensor | None,
                         drop_hr: torch.Tensor | None) -> torch.Tensor:
        """:meth:`embed`'s crop rule for any size in one graph (tracing, ONNX); equal to it up to rounding."""
        if self.analysis_crop:
            return self._pooled_traceable(lr, hr, drop_hr, self.analysis_crop, self.max_analysis_crops_per_axis)
        # the default rule switches from the whole image to crops above max_side: compute both, select one
        whole = self._crop_features(lr, hr, drop_hr, 1)
        crops = self._pooled_traceable(lr, hr, drop_hr, self.crop_size, self.crops_per_axis)
        return torch.where(torch.maximum(_size(lr, -2), _size(lr, -1)) <= self.max_side, whole, crops)

    def _crops(self, lr: torch.Tensor, hr: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """(B,3,h,w) -> (B*n,3,ch,cw) crops (n=1 when the LR is small), HR cropped at `scale` x the offsets."""
        h, w = lr.shape[-2:]
        if self.analysis_crop:
            crop, per_axis, whole_up_to = self.analysis_crop, self.max_analysis_crops_per_axis, self.analysis_crop
        else:
            crop, per_axis, whole_up_to = self.crop_size, self.crops_per_axis, self.max_side
        if max(h, w) <= whole_up_to:
            return lr, hr, 1
        ys, xs = self._crop_offsets(h, crop, per_axis), self._crop_offsets(w, crop, per_axis)
        ch, cw = min(h, crop), min(w, crop)
        s = self.scale
        lr_c = torch.stack([lr[..., y:y + ch, x:x + cw] for y in ys for x in xs], 1).flatten(0, 1)
        hr_c = None
        if hr is not None:
            hr_c = torch.stack([hr[..., s * y:s * (y + ch), s * x:s * (x + cw)] for y in ys for x in xs],
                               1).flatten(0, 1)
        return lr_c, hr_c, len(ys) * len(xs)

    def _check_hr(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Crop HR from the top-left to exactly `scale` x the LR size (the evaluation convention)."""
        h, w = lr.shape[-2:]
        H, W = self.scale * h, self.scale * w
        if hr.shape[-2] < H or hr.shape[-1] < W or hr.shape[0] != lr.shape[0]:
            raise ValueError(
                f"HR {tuple(hr.shape)} does not cover scale {self.scale} x LR {tuple(lr.shape)}"
            )
        return hr[..., :H, :W]

    def embed(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor | None = None,
        drop_hr: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Pooled fused features (B, n_feats) of (Y, X); the input of the image-level contrastive head (Eq. 16).

        ``drop_hr`` (bool, shape (B,)) says which samples use the "unknown"
        embedding instead of X's features. By default: all of them when ``hr`` is
        None; in training mode each with probability ``p_unknown`` (drawn from
        ``generator``); none in eval mode.
        """
        b = lr.shape[0]
        if hr is not None:
            hr = self._check_hr(lr, hr)
            if drop_hr is None:
                if self.training and self.p_unknown > 0:
                    drop_hr = torch.rand(b, generator=generator, device=lr.device) < self.p_unknown
                else:
                    drop_hr = torch.zeros(b, dtype=torch.bool, device=lr.device)
        # Synthetic training patches are JPEG-compressed on their own grid: the search (about as costly as the
        # rest of a posterior step) runs only outside training.
        if self.grid_align and not self.training:
            offset = jpeg_grid_offset(lr)
            lr, hr = grid_window(lr, offset), None if hr is None else grid_window(hr, offset, self.scale)
        if torch.jit.is_tracing():
            pooled = self._embed_traceable(lr, hr, drop_hr)
        else:
            lr_c, hr_c, n = self._crops(lr, hr)
            pooled = self._crop_features(lr_c, hr_c, drop_hr, n).view(b, n, -1).mean(1)
        if self.noise_stats is not None:
            pooled = pooled + self.noise_mlp(self.noise_stats(lr))
        if self.patch_noise is not None:
            pooled = pooled + self.patch_noise_mlp(self.patch_noise(lr))
        return pooled

    def _crop_features(self, lr_c: torch.Tensor, hr_c: torch.Tensor | None, drop_hr: torch.Tensor | None,
                       n: int) -> torch.Tensor:
        """Pooled features (B*n, n_feats) of crops (B*n, 3, h, w) that hold `n` crops per image; `drop_hr` (B,)
        is set whenever `hr_c` is."""
        feat_lr = self.lr_down(self.lr_blocks(self.lr_stem(lr_c - 0.5)))
        unknown = self.unknown.view(1, -1, 1, 1).expand_as(feat_lr)
        if hr_c is None:
            feat_hr = unknown
        else:
            assert drop_hr is not None
            drop = drop_hr.to(lr_c.device).repeat_interleave(n).view(-1, 1, 1, 1)
            feat_hr = self.hr_branch(F.pixel_unshuffle(hr_c, self.scale) - 0.5)
            feat_hr = torch.where(drop, unknown, feat_hr)
        pooled = self.fuse(torch.cat([feat_lr, feat_hr], 1)).mean((-2, -1))
        if self.spectrum is not None:
            pooled = pooled + self.spectrum_mlp(self.spectrum(lr_c))
        return pooled

    def forward(
        self,
        lr: torch.Tensor,
        hr: torch.Tensor | None = None,
        drop_hr: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MultivariateNormal:
        """q_phi(Z | X, Y) (Eq. 2) as ``MultivariateNormal(mu, scale_tril=L)``; q(Z | Y) when ``hr`` is None.

        L has a softplus diagonal plus ``diag_floor`` and free strictly-lower
        entries, so Sigma = L L^T is a full, positive-definite covariance.
        Works for any LR size, odd ones included. See :meth:`embed` for ``drop_hr``.
        """
        out = self.head(self.embed(lr, hr, drop_hr, generator))
        d = self.z_dim
        mu, diag_raw, off = out[:, :d], out[:, d:2 * d], out[:, 2 * d:]
        tril = out.new_zeros(out.shape[0], d, d)
        tril[:, self.tril_rows, self.tril_cols] = off
        tril = tril + torch.diag_embed(F.softplus(diag_raw) + self.diag_floor)
        return MultivariateNormal(mu, scale_tril=tril)


__all__ = ["DegradationPosterior"]
