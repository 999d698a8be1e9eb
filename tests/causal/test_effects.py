import pytest
import torch

from causalsr.causal.effects import (
    EffectEstimate,
    ate,
    cate,
    intervention_effect,
    kmeans,
    paired_effects,
    summarize_effects,
)
from causalsr.models.prior import StructuredPrior

A, B = 1.5, -0.7
GAMMA = torch.tensor([0.0, 2.0, -1.0])  # per-group interaction with the treatment


def linear(x, z):
    """f(x, z) = a x + b z0 + gamma[group] x + noise-free nuisance z1^2; z[:, 2] holds the group label."""
    return A * x + B * z[:, 0] + GAMMA[z[:, 2].long()] * x + z[:, 1].pow(2)


def noisy(x, z):
    """Treatment effect varies with Z: f = (a + z1) x + b z0, so per-sample effects are random."""
    return (A + z[:, 1]) * x + B * z[:, 0]


def z_samples(n, seed=0, n_groups=3):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    z[:, 2] = torch.randint(0, n_groups, (n,), generator=g).float()
    return z


def test_ate_linear_mechanism_exact():
    z = z_samples(400)
    z[:, 2] = 0
    est = ate(linear, 2.0, 0.5, z)
    assert isinstance(est, EffectEstimate) and est.n == 400
    assert est.mean.item() == pytest.approx(A * 1.5, abs=1e-5)
    assert est.std_err.item() == pytest.approx(0.0, abs=1e-5)


def test_ate_ci_covers_truth_normal_and_bootstrap():
    z = z_samples(2000, seed=3)  # one seeded draw; test_ci_coverage_rate checks the 95% rate itself
    truth = A * (1.0 - 0.0)  # E[z1] = 0
    normal = ate(noisy, 1.0, 0.0, z)
    assert normal.ci_low < truth < normal.ci_high
    assert normal.std_err.item() == pytest.approx(1.0 / 2000**0.5, rel=0.1)
    boot = ate(noisy, 1.0, 0.0, z, ci="bootstrap", n_boot=500, generator=torch.Generator().manual_seed(0))
    boot2 = ate(noisy, 1.0, 0.0, z, ci="bootstrap", n_boot=500, generator=torch.Generator().manual_seed(0))
    assert boot.ci_low < truth < boot.ci_high and torch.equal(boot.ci_low, boot2.ci_low)
    assert (boot.ci_high - boot.ci_low).item() == pytest.approx((normal.ci_high - normal.ci_low).item(), rel=0.15)


def test_ci_coverage_rate():
    hits = 0
    for seed in range(100):
        est = ate(noisy, 1.0, 0.0, z_samples(200, seed=seed))
        hits += int(est.ci_low < A < est.ci_high)
    assert 88 <= hits <= 100  # nominal 95%


def test_tensor_outcomes_are_elementwise():
    def image(x, z):
        return x * torch.ones(len(z), 2, 4, 4) + z[:, :1, None, None]

    est = ate(image, 3.0, 1.0, z_samples(50))
    assert est.mean.shape == (2, 4, 4) and torch.allclose(est.mean, torch.full((2, 4, 4), 2.0))


def test_cate_per_group_matches_analytic():
    z = z_samples(3000, seed=2)
    groups = z[:, 2].long()
    out = cate(linear, 1.0, 0.0, z, groups)
    assert set(out) == {0, 1, 2}
    for g, est in out.items():
        assert est.mean.item() == pytest.approx(A + GAMMA[g].item(), abs=1e-5)
        assert est.n == int((groups == g).sum())
    out = cate(noisy, 1.0, 0.0, z, groups)
    assert all(est.ci_low < A < est.ci_high for est in out.values())
    assert cate(linear, 1.0, 0.0, z[:3], torch.tensor([0, 1, 1])).keys() == {1}


def test_summarize_needs_two_samples_and_known_method():
    with pytest.raises(ValueError):
        summarize_effects(torch.ones(1))
    with pytest.raises(ValueError):
        summarize_effects(torch.ones(5), ci="exact")
    assert torch.equal(paired_effects(linear, 1.0, 1.0, z_samples(4)), torch.zeros(4))


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0], [-8.0, -8.0, 8.0]])
    truth = torch.arange(4).repeat_interleave(30)
    x = centres[truth] + 0.5 * torch.randn(120, 3, generator=g)
    labels, cent = kmeans(x, 4, seed=1)
    assert labels.shape == (120,) and cent.shape == (4, 3)
    # the same partition up to a relabelling
    mapping = {int(t): int(labels[truth == t][0]) for t in range(4)}
    assert len(set(mapping.values())) == 4
    assert torch.equal(labels, torch.tensor([mapping[int(t)] for t in truth]))
    assert torch.allclose(cent[torch.tensor([mapping[t] for t in range(4)])], centres, atol=0.3)
    labels2, _ = kmeans(x, 4, seed=1)
    assert torch.equal(labels, labels2)
    with pytest.raises(ValueError):
        kmeans(x, 0)


def test_intervention_effect_coordinate_and_prior_do():
    z = torch.randn(64, 4)
    weights = torch.tensor([1.0, 2.0, -1.0, 0.5])

    def outcome(zz):
        return zz @ weights

    eff = intervention_effect(outcome, z, 1, 0.8, 0.2)
    assert torch.allclose(eff, torch.full((64,), 2.0 * 0.6))
    assert summarize_effects(eff).mean.item() == pytest.approx(1.2, abs=1e-5)

    torch.manual_seed(0)
    prior = StructuredPrior(z_dim=4, ctx_dim=5, n_components=2, hidden=8)
    ctx = torch.randn(64, 5)
    adjacency_free = intervention_effect(outcome, z, 3, 1.0, 0.0, prior=prior, ctx=ctx)
    assert torch.allclose(adjacency_free, torch.full((64,), 0.5), atol=1e-5)  # node 3 has no descendants
    eff = intervention_effect(outcome, z, 0, 1.0, 0.0, prior=prior, ctx=ctx)
    expected = outcome(prior.do(z, ctx, {0: 1.0})) - outcome(prior.do(z, ctx, {0: 0.0}))
    assert torch.allclose(eff, expected)
    assert not torch.allclose(eff, torch.full((64,), 1.0))  # descendants moved through the SCM
