"""Monte-Carlo treatment effects: ATE (Eq. 18) and CATE (Eq. 19), plus k-means semantic groups.

Every estimator is generic over a mechanism ``f(x, z)``: it is called once per
treatment arm with the whole batch of Z samples (leading dimension N) and must
return one outcome per sample, shape (N, ...) (an image, or a scalar metric).
Both arms share the same Z samples (common random numbers), so the per-sample
differences are paired and the standard error is that of their mean.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Z_95 = 1.959963984540054


@dataclass
class EffectEstimate:
    """An effect estimate with its standard error and 95% confidence interval (elementwise for tensor outcomes)."""

    mean: torch.Tensor
    std_err: torch.Tensor
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    n: int


def summarize_effects(
    effects: torch.Tensor,
    ci: str = "normal",
    n_boot: int = 1000,
    generator: torch.Generator | None = None,
) -> EffectEstimate:
    """Mean of per-sample effects (N, ...) over dim 0 with a 95% CI.

    ``ci="normal"``: mean +- 1.96 standard errors. ``ci="bootstrap"``: percentile
    interval of ``n_boot`` resampled means (seed it with ``generator``); it
    holds n_boot x N outcomes in memory, so use it for scalar metrics.
    """
    n = effects.shape[0]
    if n < 2:
        raise ValueError(f"an effect estimate needs at least 2 samples, got {n}")
    effects = effects.detach()
    mean = effects.mean(0)
    std_err = effects.std(0, unbiased=True) / math.sqrt(n)
    if ci == "normal":
        low, high = mean - Z_95 * std_err, mean + Z_95 * std_err
    elif ci == "bootstrap":
        idx = torch.randint(0, n, (n_boot, n), generator=generator).to(effects.device)
        means = effects[idx].mean(1)
        low, high = torch.quantile(means.float(), torch.tensor([0.025, 0.975], device=effects.device), dim=0)
    else:
        raise ValueError(f"unknown ci method {ci!r}; use 'normal' or 'bootstrap'")
    return EffectEstimate(mean, std_err, low.to(mean.dtype), high.to(mean.dtype), n)


def paired_effects(
    f: Callable[[object, torch.Tensor], torch.Tensor], x1: object, x0: object, z_samples: torch.Tensor
) -> torch.Tensor:
    """Per-sample effects f(x1, Z_n) - f(x0, Z_n), shape (N, ...), with the same Z_n in both arms."""
    with torch.no_grad():
        return f(x1, z_samples) - f(x0, z_samples)


def ate(
    f: Callable[[object, torch.Tensor], torch.Tensor],
    x1: object,
    x0: object,
    z_samples: torch.Tensor,
    ci: str = "normal",
    n_boot: int = 1000,
    generator: torch.Generator | None = None,
) -> EffectEstimate:
    """ATE(x1, x0) = E_Z[f(x1, Z) - f(x0, Z)] (Eq. 18), averaged over ``z_samples`` (N, ...)."""
    return summarize_effects(paired_effects(f, x1, x0, z_samples), ci, n_boot, generator)


def cate(
    f: Callable[[object, torch.Tensor], torch.Tensor],
    x1: object,
    x0: object,
    z_samples: torch.Tensor,
    groups: torch.Tensor,
    ci: str = "normal",
    n_boot: int = 1000,
    generator: torch.Generator | None = None,
) -> dict[int, EffectEstimate]:
    """CATE(x1, x0 | s) = E_Z[f(x1, Z) - f(x0, Z) | S = s] (Eq. 19), one estimate per group label.

    ``groups`` (N,) long gives each Z sample's semantic group (e.g. the
    :func:`kmeans` cluster of the S of the image it came from). Groups with
    fewer than 2 samples are skipped.
    """
    effects = paired_effects(f, x1, x0, z_samples)
    groups = groups.to(effects.device)
    out: dict[int, EffectEstimate] = {}
    for g in torch.unique(groups).tolist():
        sel = effects[groups == g]
        if sel.shape[0] >= 2:
            out[int(g)] = summarize_effects(sel, ci, n_boot, generator)
    return out


def intervention_effect(
    outcome_fn: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    index: int,
    value1: float | torch.Tensor,
    value0: float | torch.Tensor,
    prior=None,
    ctx: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample effects outcome(do(Z_index = value1)) - outcome(do(Z_index = value0)), shape (N, ...).

    The treatment is a pair of values of one factor, e.g. ``do(noise=0)`` vs
    ``do(noise=15)`` (normalised with ``causalsr.factors``). With a
    ``StructuredPrior`` the prior's do-operator is applied (descendants of the
    factor change through the structural equations); without one only that
    coordinate is set. Summarise with :func:`summarize_effects`.
    """
    def treated(value):
        if prior is not None:
            return prior.do(z, ctx, {index: value})
        value = torch.as_tensor(value, dtype=z.dtype, device=z.device)
        z_t = z.clone()
        z_t[..., index] = value
        return z_t

    with torch.no_grad():
        return outcome_fn(treated(value1)) - outcome_fn(treated(value0))


def kmeans(
    features: torch.Tensor, k: int, seed: int = 0, n_iter: int = 100, n_init: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means (k-means++ seeding, Lloyd iterations, best of ``n_init``) -> (labels (N,), centroids (k, F)).

    Forms the semantic groups of CATE (Eq. 19) from features S (N, F).
    Deterministic for a given ``seed``.
    """
    x = features.detach().float()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(n_init):
        first = int(torch.randint(0, n, (1,), generator=gen))
        centroids = x[first:first + 1].clone()
        for _ in range(1, k):
            d2 = torch.cdist(x, centroids).pow(2).min(1).values
            probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
            centroids = torch.cat([centroids, x[torch.multinomial(probs.cpu(), 1, generator=gen).to(x.device)]])
        labels = torch.full((n,), -1, dtype=torch.long, device=x.device)
        for _ in range(n_iter):
            dist = torch.cdist(x, centroids)
            new = dist.argmin(1)
            if torch.equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = labels == j
                if members.any():
                    centroids[j] = x[members].mean(0)
                else:  # empty cluster: move it to the point farthest from its centroid
                    far = int(dist.min(1).values.argmax())
                    centroids[j] = x[far]
        inertia = float(torch.cdist(x, centroids).min(1).values.pow(2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels.clone(), centroids.clone())
    assert best is not None  # n_init >= 1 restarts
    return best[1], best[2]


__all__ = [
    "EffectEstimate",
    "ate",
    "cate",
    "intervention_effect",
    "kmeans",
    "paired_effects",
    "summarize_effects",
]
