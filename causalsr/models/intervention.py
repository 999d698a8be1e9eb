"""Intervention network g_psi, latent discriminator and the Eq. 20-21 regularisers.

g_psi(Z, c, xi) (Eq. 17) has the three parts the paper names: a sparse mask
per intervention type, adaptive normalisation conditioned on the type, and a
residual path, so that

    Z_int = Z + mask_c * xi_c * delta(Z, c, ctx).

The intervention type c is the index of the factor it targets (0 <= c < z_dim);
that factor's mask entry is fixed to 1, the others are sigmoid(learnt logits).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap


class InterventionNet(nn.Module):
    """g_psi(Z, c, xi) of Eq. 17, with Omega and R(xi) of Eq. 21.

    Args:
        z_dim: latent dimensions; also the number of intervention types.
        ctx_dim: size of the optional pooled context c (SCT output).
        hidden: MLP width.
    """

    def __init__(self, z_dim: int = 8, ctx_dim: int = 256, hidden: int = 64):
        super().__init__()
        self.z_dim = z_dim
        self.mask_logits = nn.Parameter(torch.full((z_dim, z_dim), -3.0))
        self.xi = nn.Parameter(torch.ones(z_dim))
        self.inp = nn.Linear(2 * z_dim, hidden)
        self.ctx_proj = nn.Linear(ctx_dim, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.ada = nn.Embedding(z_dim, 2 * hidden)
        nn.init.zeros_(self.ada.weight)
        self.out = nn.Linear(hidden, z_dim)

    def _prepare(
        self, c: torch.Tensor | int, xi: float | torch.Tensor | None, ctx: torch.Tensor | None, z: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Per-sample tensors that do not depend on Z: one-hot type, mask, strength, context, AdaLN gain/bias."""
        b = z.shape[0]
        c = torch.as_tensor(c, device=z.device).long().expand(b)
        if bool(((c < 0) | (c >= self.z_dim)).any()):
            raise IndexError(f"intervention type must be in [0, {self.z_dim})")
        onehot = F.one_hot(c, self.z_dim).to(z.dtype)
        mask = torch.where(onehot.bool(), torch.ones_like(onehot), torch.sigmoid(self.mask_logits[c]))
        strength = self.xi[c] if xi is None else torch.as_tensor(xi, dtype=z.dtype, device=z.device).expand(b)
        ctx_h = self.ctx_proj(ctx) if ctx is not None else z.new_zeros(b, self.mid.in_features)
        gain, bias = self.ada(c).chunk(2, -1)
        return onehot, mask, strength, ctx_h, gain, bias

    def _delta(self, z, onehot, ctx_h, gain, bias):
        """MLP on [Z, onehot(c)] (+ context), adaptive LayerNorm with type-predicted gain/bias, -> delta (.., z_dim)."""
        h = F.silu(self.inp(torch.cat([z, onehot], -1)) + ctx_h)
        h = self.mid(h)
        h = F.layer_norm(h, h.shape[-1:]) * (1.0 + gain) + bias
        return self.out(F.silu(h))

    def _intervene(self, z, onehot, mask, strength, ctx_h, gain, bias):
        return z + mask * strength.unsqueeze(-1) * self._delta(z, onehot, ctx_h, gain, bias)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | int,
        xi: float | torch.Tensor | None = None,
        ctx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Z_int = g_psi(Z, c, xi) = Z + mask_c * xi * delta (Eq. 17); z (B, z_dim), c (B,) or int.

        ``xi`` None uses the learnt per-type strength xi_c; ``ctx`` (B, ctx_dim) is optional.
        """
        return self._intervene(z, *self._prepare(c, xi, ctx, z))

    def omega(
        self,
        z: torch.Tensor,
        c: torch.Tensor | int,
        weights: torch.Tensor | None = None,
        xi: float | torch.Tensor | None = None,
        ctx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Omega(g_psi) = sum_i w_i || dZ_int/dZ_i - e_i ||_1 (Eq. 21), averaged over the batch.

        The Jacobian is exact (torch.func ``vmap(jacrev(.))``). The identity,
        i.e. the residual path's own Jacobian, is subtracted: a residual map
        always has dZ_int/dZ_i = e_i + ..., so without the subtraction Omega
        could never be small; what it penalises is the intervention's own
        dependence on Z. ``weights`` (z_dim,) default to ones. Differentiable in psi.
        """
        prepared = self._prepare(c, xi, ctx, z)
        jac = vmap(jacrev(self._intervene, argnums=0))(z, *prepared)  # (B, out, in)
        eye = torch.eye(self.z_dim, dtype=z.dtype, device=z.device)
        per_input = (jac - eye).abs().sum(-2)  # L1 over outputs of column i: (B, z_dim)
        w = torch.ones(self.z_dim, dtype=z.dtype, device=z.device) if weights is None else weights
        return (per_input * w).sum(-1).mean()

    def strength_penalty(self, beta: float = 0.1) -> torch.Tensor:
        """R(xi) = ||xi||_2^2 + beta ||xi||_1 (Eq. 21) over the learnt per-type strengths."""
        return self.xi.pow(2).sum() + beta * self.xi.abs().sum()


class LatentDiscriminator(nn.Module):
    """D of Eq. 20: tells posterior samples Z from interventions g_psi(Z, c, xi); returns logits (B,).

    Args:
        z_dim: latent dimensions.
        hidden: MLP width.
    """

    def __init__(self, z_dim: int = 8, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def adversarial_losses(
    disc: LatentDiscriminator, z_real: torch.Tensor, z_int: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(disc_loss, gen_loss) for Eq. 20's min_psi max_D term, in the non-saturating BCE form.

    Eq. 20 as printed has only E[D(g_psi(Z))]; we read it as the standard GAN
    game whose real samples are posterior draws Z: D maximises
    log D(Z) + log(1 - D(Z_int)), i.e. minimises ``disc_loss`` (inputs detached,
    so it trains D only); g_psi uses the non-saturating ``gen_loss`` =
    -log D(Z_int), which keeps intervened factors in distribution. Step
    ``gen_loss`` with psi's optimiser only (it also reaches D's parameters).
    """
    real = disc(z_real.detach())
    fake = disc(z_int.detach())
    disc_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    gen_logits = disc(z_int)
    gen_loss = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
    return disc_loss, gen_loss


__all__ = ["InterventionNet", "LatentDiscriminator", "adversarial_losses"]
