"""Algorithm 1: counterfactual sample generation (Eq. 13-14), line by line.

Readings (see docs/paper-mapping.md):
- Z is drawn (line 6) before the gradients of lines 2 and 4 are taken, because
  log p(Y | X, Z) needs a value of Z.
- g_kl and g_rec are normalised to unit RMS per sample, so alpha0 and beta are
  step sizes in pixel units; the raw gradients' scale depends on image size.
- Line 16 adds a Z-space difference to an image, which does not type-check. We
  take the image step that moves the encoding of X' back towards Z:
  X' <- X' - lambda * RMS-normalised grad_X' ||mu_phi(X', Y) - Z||^2.
- The counterfactual target Y_cf (Eq. 11) is not produced here: the real
  degradation pipeline is applied to X' with the same parameters and noise seed
  (`causalsr.data.degradations.degrade`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class AdaptiveStrength(nn.Module):
    """h_psi(X, Y) of Eq. 14 / Alg. 1 line 7: one logit per sample from local image statistics."""

    def __init__(self, scale: int = 4, n_feats: int = 16):
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(
            nn.Conv2d(3 * scale * scale + 3, n_feats, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(n_feats, 1),
        )

    def forward(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(hr, self.scale)
        return self.net(torch.cat([x, lr], dim=1)).squeeze(1)


@dataclass
class Counterfactual:
    """Output of Algorithm 1 (plus the intermediates the tests and losses use)."""

    x_cf: torch.Tensor        # X' in [0, 1]; differentiable w.r.t. psi through alpha
    z: torch.Tensor           # Z ~ q(Z | X, Y) (line 6), detached
    z_ref: torch.Tensor       # mean of q(Z | X, Y): what lines 15-16 compare Z' with and pull it towards
    z_cf: torch.Tensor        # posterior mean of q(Z | X', Y) after line 16, detached
    alpha: torch.Tensor       # per-sample alpha of Eq. 14
    h: torch.Tensor           # sigma(h_psi(X, Y)) (line 7)
    corrected: torch.Tensor   # bool per sample: line 16 applied


def _rms_normalise(g: torch.Tensor) -> torch.Tensor:
    rms = g.flatten(1).pow(2).mean(dim=1).sqrt().clamp_min(1e-12)
    return g / rms.view(-1, *([1] * (g.dim() - 1)))


def generate_counterfactual(model, hr: torch.Tensor, lr: torch.Tensor, ctx: torch.Tensor, *,
                            alpha0: float, beta: float, gamma: float, delta: float, lam: float) -> Counterfactual:
    """Algorithm 1 for a batch. `model` is a `CausalSR` (posterior, prior, mechanism, h_psi).

    Only `alpha` (through h_psi) keeps a graph; the gradients g_kl and g_rec are
    taken w.r.t. X alone, so no parameter gradient accumulates here.
    """
    ctx = ctx.detach()
    keep = torch.zeros(hr.shape[0], dtype=torch.bool, device=hr.device)  # X is always seen here
    x = hr.detach().requires_grad_(True)
    q = model.posterior(lr, x, drop_hr=keep)
    z = q.rsample()  # line 6 (drawn first: line 4 needs a value of Z)
    # line 2: g_kl = grad_X KL(q(Z|X,Y) || p(Z))
    kl = model.prior.kl(q, ctx, n_samples=1, adjacency=model.prior_adjacency()).sum()
    (g_kl,) = torch.autograd.grad(kl, x)
    # line 4: g_rec = grad_X log p(Y | X, Z)
    loglik = model.mechanism.log_likelihood(lr, x, z.detach(), per_pixel=True).sum()
    (g_rec,) = torch.autograd.grad(loglik, x)
    # line 7: h = sigma(h_psi(X, Y)); line 8 / Eq. 14: alpha = alpha0 h (1 + gamma ||grad_X L_rec||), L_rec = -log p
    h = torch.sigmoid(model.h_psi(hr.detach(), lr))
    grad_norm = g_rec.flatten(1).norm(dim=1)
    alpha = alpha0 * h * (1.0 + gamma * grad_norm)
    # line 10: X' = X + alpha g_kl + beta g_rec ; line 12: clip to [0, 1]
    a = alpha.view(-1, 1, 1, 1)
    x_cf = (hr.detach() + a * _rms_normalise(g_kl) + beta * _rms_normalise(g_rec)).clamp(0.0, 1.0)
    # line 14: Z' = mean of q(Z | X', Y); lines 15-16: if ||Z' - Z|| > delta, step X' back towards Z.
    # Z' is a mean, so it is compared with the mean of q(Z | X, Y): against the sample Z the distance
    # holds the sampling noise (about sqrt(d) posterior stds) and line 15 always fired.
    z_target = q.mean.detach()
    x_probe = x_cf.detach().requires_grad_(True)
    z_prime = model.posterior(lr, x_probe, drop_hr=keep).mean
    dist = (z_prime - z_target).pow(2).sum(dim=1)
    (g_cons,) = torch.autograd.grad(dist.sum(), x_probe)
    corrected = dist.sqrt() > delta
    step = lam * _rms_normalise(g_cons) * corrected.view(-1, 1, 1, 1).to(x_cf.dtype)
    x_cf = (x_cf - step).clamp(0.0, 1.0)
    with torch.no_grad():
        z_cf = model.posterior(lr, x_cf.detach(), drop_hr=keep).mean
    return Counterfactual(x_cf=x_cf, z=z.detach(), z_ref=z_target, z_cf=z_cf, alpha=alpha, h=h, corrected=corrected)
