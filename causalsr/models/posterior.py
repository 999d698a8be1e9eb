"""Degradation posterior q_phi(Z | X, Y) with a full covariance (paper Eq. 2).

One encoder serves both training and inference (DESIGN Component 1): the HR
branch's features are replaced by a learned "unknown" embedding when X is not
given (inference, and at random per training sample), so ``q(Z | Y)`` is the
inference posterior and ``q(Z | X, Y)`` stays differentiable in X, as
Algorithm 1 line 2 (d KL / dX) requires.

Large LR images are analysed on a few full-resolution crops rather than on a
downscaled copy: resampling changes the very factors Z measures (it divides
the noise sigma and the blur sigma by the resampling factor and smears the
8x8 JPEG grid), while a crop keeps them exactly. Crops start on multiples of 8
so JPEG blocks stay aligned, and the pooled features are averaged over crops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import MultivariateNormal


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


class DegradationPosterior(nn.Module):
    """q_phi(Z | X, Y) = N(mu_phi(X, Y), Sigma_phi(X, Y)), Sigma = L L^T (paper Eq. 2).

    Args:
        scale: SR factor (2, 3, 4, 8); X is pixel-unshuffled by it onto Y's grid.
        z_dim: latent dimensions; the first ``N_NAMED`` are the named factors.
        n_feats: feature width, also the size of :meth:`embed`'s output.
        p_unknown: training-time probability, per sample, that X's features are
            replaced by the learned "unknown" embedding (so q(Z | Y) is learnt).

    Cost: three 3x3 convs per branch, two of them strided, a 1x1 + 3x3 fusion and
    a 2-layer MLP; an LR image longer than ``max_side`` is analysed on
    ``crops_per_axis**2`` crops of ``crop_size`` pixels.
    """

    max_side = 256
    crop_size = 128
    crops_per_axis = 2
    diag_floor = 1e-3

    def __init__(self, scale: int = 4, z_dim: int = 8, n_feats: int = 32, p_unknown: float = 0.5):
        super().__init__()
        if not 0.0 <= p_unknown <= 1.0:
            raise ValueError(f"p_unknown must be in [0, 1], got {p_unknown}")
        self.scale = scale
        self.z_dim = z_dim
        self.n_feats = n_feats
        self.p_unknown = p_unknown
        self.lr_branch = _branch(3, n_feats)
        self.hr_branch = _branch(3 * scale * scale, n_feats)
        self.unknown = nn.Parameter(torch.zeros(n_feats))
        self.fuse = nn.Sequential(
            nn.Conv2d(2 * n_feats, n_feats, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        )
        n_tril = z_dim * (z_dim + 1) // 2
        self.head = nn.Sequential(
            nn.Linear(n_feats, 2 * n_feats),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(2 * n_feats, z_dim + n_tril),
        )
        rows, cols = torch.tril_indices(z_dim, z_dim, offset=-1)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)

    @property
    def embed_dim(self) -> int:
        return self.n_feats

    def _crop_offsets(self, size: int) -> list[int]:
        if size <= self.crop_size:
            return [0]
        last = size - self.crop_size
        return sorted({int(last * k / (self.crops_per_axis - 1)) // 8 * 8 for k in range(self.crops_per_axis)})

    def _crops(self, lr: torch.Tensor, hr: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """(B,3,h,w) -> (B*n,3,ch,cw) crops (n=1 when the LR is small), HR cropped at `scale` x the offsets."""
        h, w = lr.shape[-2:]
        if max(h, w) <= self.max_side:
            return lr, hr, 1
        ys, xs = self._crop_offsets(h), self._crop_offsets(w)
        ch, cw = min(h, self.crop_size), min(w, self.crop_size)
        s = self.scale
        lr_c = torch.stack([lr[..., y:y + ch, x:x + cw] for y in ys for x in xs], 1).flatten(0, 1)
        hr_c = None
        if hr is not None:
            hr_c = torch.stack([hr[..., s * y:s * (y + ch), s * x:s * (x + cw)] for y in ys for x in xs], 1).flatten(0, 1)
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
        lr_c, hr_c, n = self._crops(lr, hr)
        feat_lr = self.lr_branch(lr_c - 0.5)
        unknown = self.unknown.view(1, -1, 1, 1).expand_as(feat_lr)
        if hr_c is None:
            feat_hr = unknown
        else:
            if drop_hr is None:
                if self.training and self.p_unknown > 0:
                    drop_hr = torch.rand(b, generator=generator, device=lr.device) < self.p_unknown
                else:
                    drop_hr = torch.zeros(b, dtype=torch.bool, device=lr.device)
            drop = drop_hr.to(lr.device).repeat_interleave(n).view(-1, 1, 1, 1)
            feat_hr = self.hr_branch(F.pixel_unshuffle(hr_c, self.scale) - 0.5)
            feat_hr = torch.where(drop, unknown, feat_hr)
        fused = self.fuse(torch.cat([feat_lr, feat_hr], 1))
        return fused.mean((-2, -1)).view(b, n, -1).mean(1)

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
