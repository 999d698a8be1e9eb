"""Structured prior over degradation factors: ER-mixture graphs + causal GNN + do-operator (Eq. 1, 4-6).

Adjacency convention (used by every function here): ``A[..., i, j]`` is the
weight of the edge j -> i (row = child, column = parent). Nodes follow a fixed
topological order, the index order, which for the named factors is the
pipeline's causal order blur -> noise -> JPEG (``causalsr.factors``). Only
j < i edges exist, so every adjacency is strictly lower-triangular and every
graph is a DAG.

Readings of the paper (recorded in docs/paper-mapping.md):

* Eq. 5's ER(n, p_k) has one edge probability per component. Here each
  component has one probability *per allowed edge*, initialised to a common
  value p_k (so each component starts as an exact ER(n, p_k)); a single p_k
  cannot say which factor causes which, and the learnt structure is what the
  tool reports.
* Eq. 6 writes the node mean as h_i^L. Here mu_i and log sigma_i are read from
  h_i^L by a linear head; messages carry [h_j, Z_j] (Z values must enter, or the
  "conditional" p(Z | G) would not depend on the parents' values), and the
  update keeps a self term U h_i (roots would otherwise lose their context).
  The parent mean divides by max(sum_j A_ij, 1), equal to 1/|Pa(i)| on hard
  graphs and continuous in soft edge weights.
* h_i^0 = e_i + W_c c: the context drives every node, and is the only input
  of roots (Z = f_z(C, eps_z), Eq. 1).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import MultivariateNormal

LOG_SIGMA_BOUND = 5.0


def descendants(adjacency: torch.Tensor, nodes: list[int]) -> torch.Tensor:
    """Bool mask (..., d) of the nodes reachable from ``nodes`` along edges with weight > 0 (``nodes`` included)."""
    d = adjacency.shape[-1]
    edges = (adjacency > 0).to(adjacency.dtype)
    mark = adjacency.new_zeros(*adjacency.shape[:-2], d)
    mark[..., nodes] = 1.0
    for _ in range(d - 1):
        mark = ((edges @ mark.unsqueeze(-1)).squeeze(-1) + mark).clamp_max(1.0)
    return mark > 0


class StructuredPrior(nn.Module):
    """p(Z) = sum_G p(Z | G) p(G), p(G) = sum_k pi_k ER(n, p_k), p(Z | G) = prod_i N(mu_i, sigma_i^2) (Eq. 4-6).

    Args:
        z_dim: number of latent nodes d.
        ctx_dim: size of the pooled context c (from the SCT, Eq. 10).
        n_components: K mixture components of Eq. 5.
        hidden: GNN node-feature width.
        n_layers: GNN layers L of Eq. 6.
        n_graph_samples: relaxed graphs drawn per component to estimate log p(Z).
        temperature: relaxed-Bernoulli (binary Concrete) temperature of the edge samples.
    """

    # buffers, registered in __init__
    edge_rows: torch.Tensor
    edge_cols: torch.Tensor
    allowed: torch.Tensor

    def __init__(
        self,
        z_dim: int = 8,
        ctx_dim: int = 256,
        n_components: int = 3,
        hidden: int = 32,
        n_layers: int = 2,
        n_graph_samples: int = 4,
        temperature: float = 0.5,
    ):
        super().__init__()
        if n_components < 1 or n_graph_samples < 1 or n_layers < 1:
            raise ValueError("n_components, n_graph_samples and n_layers must be >= 1")
        self.z_dim = z_dim
        self.ctx_dim = ctx_dim
        self.n_components = n_components
        self.n_graph_samples = n_graph_samples
        self.temperature = temperature
        rows, cols = torch.tril_indices(z_dim, z_dim, offset=-1)
        self.register_buffer("edge_rows", rows, persistent=False)
        self.register_buffer("edge_cols", cols, persistent=False)
        self.register_buffer("allowed", torch.tril(torch.ones(z_dim, z_dim), -1), persistent=False)
        p0 = torch.linspace(0.2, 0.8, n_components) if n_components > 1 else torch.tensor([0.5])
        self.pi_logits = nn.Parameter(torch.zeros(n_components))
        self.edge_logits = nn.Parameter(torch.logit(p0)[:, None].repeat(1, rows.numel()))
        self.node_embed = nn.Parameter(0.1 * torch.randn(z_dim, hidden))
        self.ctx_proj = nn.Linear(ctx_dim, hidden)
        self.message = nn.ModuleList(nn.Linear(hidden + 1, hidden) for _ in range(n_layers))
        self.update = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(n_layers))
        self.out = nn.Linear(hidden, 2)

    # ---- graphs (Eq. 5) -------------------------------------------------------------
    def _to_matrix(self, edges: torch.Tensor) -> torch.Tensor:
        """(..., n_edges) edge weights -> (..., d, d) strictly lower-triangular adjacency."""
        adj = edges.new_zeros(*edges.shape[:-1], self.z_dim, self.z_dim)
        adj[..., self.edge_rows, self.edge_cols] = edges
        return adj

    def _relaxed(self, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Reparameterised binary-Concrete sample.

        The same law as ``torch.distributions.RelaxedBernoulli(T, logits=...)``.

        Written out so that the noise can come from an explicit generator.
        """
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        u = u.clamp(torch.finfo(u.dtype).tiny, 1.0 - torch.finfo(u.dtype).eps)
        return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)

    def mixing_weights(self) -> torch.Tensor:
        """pi_k of Eq. 5, shape (K,)."""
        return torch.softmax(self.pi_logits, 0)

    def edge_probabilities(self) -> torch.Tensor:
        """p_k per allowed edge as adjacency matrices, shape (K, d, d)."""
        return self._to_matrix(torch.sigmoid(self.edge_logits))

    def expected_adjacency(self) -> torch.Tensor:
        """E_{p(G)}[A] = sum_k pi_k p_k on the allowed j < i entries, shape (d, d); A[i, j] is edge j -> i."""
        return (self.mixing_weights()[:, None, None] * self.edge_probabilities()).sum(0)

    def sample_graphs(
        self, n: int, generator: torch.Generator | None = None, hard: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw n graphs from p(G) (Eq. 5): component k ~ pi, then edges ~ relaxed Bernoulli(p_k) (hard: Bernoulli).

        Returns (A (n, d, d) strictly lower-triangular, component index (n,) long).
        Relaxed samples are differentiable in the edge logits.
        """
        comp = torch.multinomial(self.mixing_weights().detach(), n, replacement=True, generator=generator)
        logits = self.edge_logits[comp]
        if hard:
            edges = torch.bernoulli(torch.sigmoid(logits).detach(), generator=generator)
        else:
            edges = self._relaxed(logits, generator)
        return self._to_matrix(edges), comp

    # ---- causal GNN (Eq. 6) ---------------------------------------------------------
    def node_params(
        self, z: torch.Tensor, ctx: torch.Tensor | None, adjacency: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 6's causal GNN: (mu, log_sigma) of every node, shape broadcast(z, ctx, adjacency) batch + (d,).

        h_i^0 = e_i + W_c c;  h_i^l = SiLU(W^l sum_j A_ij [h_j^{l-1}, Z_j] / max(sum_j A_ij, 1) + U^l h_i^{l-1});
        (mu_i, log sigma_i) = head(h_i^L). Entries of ``adjacency`` outside the
        topological order (j >= i) are ignored, so node i depends only on the Z
        of its ancestors, never on Z_i or a non-ancestor. ``ctx`` None means no
        context (the SCT ablation).
        """
        d = self.z_dim
        adj = adjacency * self.allowed
        h: torch.Tensor = self.node_embed
        if ctx is not None:
            h = h + self.ctx_proj(ctx).unsqueeze(-2)
        else:
            h = h + self.ctx_proj.bias
        batch = torch.broadcast_shapes(z.shape[:-1], h.shape[:-2], adj.shape[:-2])
        z = z.expand(*batch, d).unsqueeze(-1)
        h = h.expand(*batch, *h.shape[-2:])
        adj = adj.expand(*batch, d, d)
        norm = adj.sum(-1, keepdim=True).clamp_min(1.0)
        for message, update in zip(self.message, self.update):
            agg = adj @ torch.cat([h, z], -1) / norm
            h = F.silu(message(agg) + update(h))
        mu, raw = self.out(h).unbind(-1)
        return mu, LOG_SIGMA_BOUND * torch.tanh(raw / LOG_SIGMA_BOUND)

    def _log_prob_given(self, z: torch.Tensor, ctx: torch.Tensor | None, adjacency: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self.node_params(z, ctx, adjacency)
        lp = -0.5 * ((z - mu) * torch.exp(-log_sigma)).pow(2) - log_sigma - 0.5 * math.log(2 * math.pi)
        return lp.sum(-1)

    def log_prob(
        self,
        z: torch.Tensor,
        ctx: torch.Tensor | None = None,
        adjacency: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """log p(Z) (Eq. 4), shape z.shape[:-1].

        With ``adjacency`` (d, d) or batched: log p(Z | G) (Eq. 6). Without: the
        Monte-Carlo estimate logsumexp_k [log pi_k + logmeanexp_s log p(Z | G_ks)]
        over ``n_graph_samples`` relaxed graphs per component, differentiable in
        pi and in the edge probabilities. (The log-mean-exp of a finite sample is
        a lower-biased estimate of log E_G p(Z | G).)
        """
        if adjacency is not None:
            return self._log_prob_given(z, ctx, adjacency)
        s = self.n_graph_samples
        logits = self.edge_logits[:, None, :].expand(-1, s, -1)
        graphs = self._to_matrix(self._relaxed(logits, generator))  # (K, S, d, d)
        ctx_g = None if ctx is None else ctx[..., None, None, :]
        lp = self._log_prob_given(z[..., None, None, :], ctx_g, graphs)  # (..., K, S)
        lp = torch.logsumexp(lp, -1) - math.log(s)
        return torch.logsumexp(torch.log_softmax(self.pi_logits, 0) + lp, -1)

    def kl(
        self,
        q: MultivariateNormal,
        ctx: torch.Tensor | None = None,
        n_samples: int = 1,
        adjacency: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """KL(q || p) of Eq. 3 by Monte Carlo, E_q[log q(Z) - log p(Z)] with reparameterised Z ~ q; shape (B,)."""
        z = q.rsample((n_samples,))
        return (q.log_prob(z) - self.log_prob(z, ctx, adjacency, generator)).mean(0)

    # ---- SCM use: sampling, abduction, intervention ----------------------------------
    def _ancestral(
        self,
        ctx: torch.Tensor | None,
        adjacency: torch.Tensor,
        eps: torch.Tensor,
        z: torch.Tensor,
        recompute: torch.Tensor,
    ) -> torch.Tensor:
        """In topological order set Z_i = mu_i(Z_pa) + sigma_i eps_i where ``recompute`` (..., d) is True."""
        index = torch.arange(self.z_dim, device=z.device)
        for i in range(self.z_dim):
            if not bool(recompute[..., i].any()):
                continue
            mu, log_sigma = self.node_params(z, ctx, adjacency)
            value = mu[..., i] + torch.exp(log_sigma[..., i]) * eps[..., i]
            z = torch.where((index == i) & recompute, value.unsqueeze(-1), z)
        return z

    def sample(
        self,
        ctx: torch.Tensor | None,
        adjacency: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        n: int | None = None,
    ) -> torch.Tensor:
        """Ancestral sample Z = f_z(C, eps) (Eq. 1), shape (B, d), B = len(ctx) (or ``n`` when ctx is None).

        Without ``adjacency`` each sample gets its own hard graph G ~ p(G), so Z ~ p(Z) of Eq. 4.
        """
        if ctx is None and n is None:
            raise ValueError("sample() needs ctx or n")
        b = ctx.shape[0] if ctx is not None else n
        assert b is not None  # ctx or n, checked above
        device = self.node_embed.device
        if adjacency is None:
            adjacency, _ = self.sample_graphs(b, generator, hard=True)
        eps = torch.randn(b, self.z_dim, generator=generator, device=device)
        z = torch.zeros(b, self.z_dim, device=device)
        return self._ancestral(ctx, adjacency, eps, z, torch.ones_like(z, dtype=torch.bool))

    def abduct(
        self, z: torch.Tensor, ctx: torch.Tensor | None, adjacency: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Abduction: exogenous noise eps_i = (Z_i - mu_i(Z_pa)) / sigma_i.

        Under ``adjacency`` (default: expected graph).
        """
        adjacency = self.expected_adjacency() if adjacency is None else adjacency
        mu, log_sigma = self.node_params(z, ctx, adjacency)
        return (z - mu) * torch.exp(-log_sigma)

    def do(
        self,
        z: torch.Tensor,
        ctx: torch.Tensor | None,
        interventions: Mapping[int, float | torch.Tensor],
        adjacency: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """do(Z_i = v, ...) on the SCM of Eq. 1/6 (abduction, action, prediction).

        eps is abducted under ``adjacency`` (default: the expected graph); each
        intervened node is fixed to its value (its own equation is removed, so
        its parents no longer matter); in topological order every descendant is
        recomputed as mu_i(new ancestors) + sigma_i(new ancestors) * eps_i; every
        non-descendant keeps its value exactly. Values are floats, 0-d tensors or
        tensors of shape z.shape[:-1]. Differentiable in z, ctx and the values.
        """
        adjacency = self.expected_adjacency() if adjacency is None else adjacency
        for i in interventions:
            if not 0 <= int(i) < self.z_dim:
                raise IndexError(f"intervention index {i} is outside Z's {self.z_dim} dimensions")
        if not interventions:
            return z
        eps = self.abduct(z, ctx, adjacency)
        index = torch.arange(self.z_dim, device=z.device)
        fixed = torch.zeros(self.z_dim, dtype=torch.bool, device=z.device)
        z_new = z
        for i, value in interventions.items():
            value = torch.as_tensor(value, dtype=z.dtype, device=z.device)
            z_new = torch.where(index == int(i), value.unsqueeze(-1), z_new)
            fixed = fixed | (index == int(i))
        targets = [int(i) for i in interventions]
        recompute = descendants(adjacency * self.allowed, targets) & ~fixed
        recompute = recompute.expand(torch.broadcast_shapes(recompute.shape, z_new.shape))
        return self._ancestral(ctx, adjacency, eps, z_new, recompute)


__all__ = ["StructuredPrior", "descendants"]
