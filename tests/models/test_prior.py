import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal, kl_divergence

from causalsr.models.prior import StructuredPrior, descendants


def make(**kw):
    torch.manual_seed(0)
    args = dict(z_dim=5, ctx_dim=6, n_components=3, hidden=8, n_layers=2, n_graph_samples=4, temperature=0.5)
    args.update(kw)
    return StructuredPrior(**args)


def graph(d, edges):
    """Adjacency with A[i, j] = 1 for each edge j -> i."""
    a = torch.zeros(d, d)
    for j, i in edges:
        a[i, j] = 1.0
    return a


def reference_node_params(prior, z, ctx, adj):
    """Eq. 6 written node by node with explicit loops (one sample)."""
    d = prior.z_dim
    h = [prior.node_embed[i] + prior.ctx_proj(ctx) for i in range(d)]
    for message, update in zip(prior.message, prior.update):
        new = []
        for i in range(d):
            agg = sum(adj[i, j] * torch.cat([h[j], z[j : j + 1]]) for j in range(i))
            agg = agg / max(float(sum(adj[i, j] for j in range(i))), 1.0) if i > 0 else torch.zeros(h[0].numel() + 1)
            new.append(F.silu(message(agg) + update(h[i])))
        h = new
    out = torch.stack([prior.out(hi) for hi in h])
    return out[:, 0], 5.0 * torch.tanh(out[:, 1] / 5.0)


def test_node_params_match_eq6_reference():
    prior = make(z_dim=4)
    z, ctx = torch.randn(4), torch.randn(6)
    adj = graph(4, [(0, 1), (0, 2), (1, 3), (2, 3)]) * 0.7
    mu, ls = prior.node_params(z, ctx, adj)
    mu_ref, ls_ref = reference_node_params(prior, z, ctx, adj)
    assert torch.allclose(mu, mu_ref, atol=1e-5) and torch.allclose(ls, ls_ref, atol=1e-5)


def test_sampled_graphs_are_dags():
    prior = make(z_dim=6)
    gen = torch.Generator().manual_seed(0)
    for hard in (False, True):
        a, comp = prior.sample_graphs(64, generator=gen, hard=hard)
        assert a.shape == (64, 6, 6) and comp.shape == (64,) and int(comp.max()) < 3
        assert torch.equal(a, torch.tril(a, -1))
        assert torch.linalg.matrix_power((a > 0).float(), 6).abs().sum() == 0  # nilpotent = acyclic
        assert a.min() >= 0 and a.max() <= 1
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    a1, _ = prior.sample_graphs(8, generator=torch.Generator().manual_seed(3))
    a2, _ = prior.sample_graphs(8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2)
    expected = prior.expected_adjacency()
    manual = (torch.softmax(prior.pi_logits, 0)[:, None, None] * prior.edge_probabilities()).sum(0)
    assert torch.allclose(expected, manual) and torch.equal(expected, torch.tril(expected, -1))


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_node_depends_only_on_ancestors(n_layers):
    d = 6
    prior = make(z_dim=d, n_layers=n_layers)
    adj = graph(d, [(0, 2), (2, 4), (1, 3), (3, 5), (4, 5)])
    anc = {0: set(), 1: set(), 2: {0}, 3: {1}, 4: {0, 2}, 5: {0, 1, 2, 3, 4}}
    z, ctx = torch.randn(d), torch.randn(6)
    for k in (0, 1):
        jac = torch.autograd.functional.jacobian(lambda zz, k=k: prior.node_params(zz, ctx, adj)[k], z)
        for i in range(d):
            for j in range(d):
                if j not in anc[i]:
                    assert jac[i, j] == 0, (i, j)
        assert jac[2, 0] != 0 and jac[5, 4] != 0  # parents do matter
    # soft (relaxed) graphs: never a dependence on Z_i or a later node
    soft, _ = prior.sample_graphs(1, generator=torch.Generator().manual_seed(0))
    jac = torch.autograd.functional.jacobian(lambda zz: prior.node_params(zz, ctx, soft[0])[0], z)
    assert torch.equal(jac, torch.tril(jac, -1))
    # entries against the topological order are ignored
    cyclic = adj + adj.T
    assert torch.equal(prior.node_params(z, ctx, cyclic)[0], prior.node_params(z, ctx, adj)[0])


def test_log_prob_gradients_reach_edges_and_mixture():
    prior = make()
    z, ctx = torch.randn(7, 5), torch.randn(7, 6)
    lp = prior.log_prob(z, ctx, generator=torch.Generator().manual_seed(0))
    assert lp.shape == (7,) and torch.isfinite(lp).all()
    lp.sum().backward()
    assert prior.edge_logits.grad.abs().gt(0).all()
    assert prior.pi_logits.grad.abs().sum() > 0
    assert prior.ctx_proj.weight.grad.abs().sum() > 0


def test_log_prob_given_graph_is_gaussian_product():
    prior = make()
    z, ctx = torch.randn(3, 5), torch.randn(3, 6)
    adj = graph(5, [(0, 1), (1, 4)])
    mu, ls = prior.node_params(z, ctx, adj)
    expected = torch.distributions.Normal(mu, ls.exp()).log_prob(z).sum(-1)
    assert torch.allclose(prior.log_prob(z, ctx, adj), expected, atol=1e-5)


def _random_q(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    tril = torch.tril(0.3 * torch.randn(b, d, d, generator=g), -1)
    tril = tril + torch.diag_embed(0.2 + torch.rand(b, d, generator=g))
    return MultivariateNormal(torch.randn(b, d, generator=g), scale_tril=tril)


def test_kl_matches_closed_form_without_edges():
    prior = make(n_components=1)
    with torch.no_grad():
        prior.edge_logits.fill_(-1e4)  # every relaxed edge sample is exactly 0
    b, d = 3, 5
    q, ctx = _random_q(b, d, 0), torch.randn(b, 6)
    mu, ls = prior.node_params(torch.zeros(d), ctx, torch.zeros(d, d))
    p = MultivariateNormal(mu, scale_tril=torch.diag_embed(ls.exp()))
    exact = kl_divergence(q, p)
    torch.manual_seed(0)
    n = 6000
    z = q.rsample((n,))
    per_sample = q.log_prob(z) - prior.log_prob(z, ctx)
    tol = 4 * per_sample.std(0) / math.sqrt(n) + 1e-4
    assert torch.all((per_sample.mean(0) - exact).abs() < tol)
    torch.manual_seed(1)
    est = prior.kl(q, ctx, n_samples=n, adjacency=torch.zeros(d, d))
    assert est.shape == (b,) and torch.all((est - exact).abs() < tol)


def test_kl_is_reparameterised():
    prior = make()
    loc = torch.zeros(2, 5, requires_grad=True)
    q = MultivariateNormal(loc, scale_tril=torch.eye(5).expand(2, 5, 5))
    prior.kl(q, torch.randn(2, 6), n_samples=3).sum().backward()
    assert loc.grad.abs().sum() > 0


def test_do_on_chain_follows_structural_equations():
    prior = make(z_dim=3)
    chain = graph(3, [(0, 1), (1, 2)])
    z, ctx = torch.randn(3), torch.randn(6)
    mu, ls = reference_node_params(prior, z, ctx, chain)
    eps = (z - mu) / ls.exp()
    assert torch.allclose(prior.abduct(z[None], ctx[None], chain)[0], eps, atol=1e-5)

    v = torch.tensor(1.7)
    out = prior.do(z[None], ctx[None], {1: v}, adjacency=chain)[0]
    z_new = torch.stack([z[0], v, torch.tensor(0.0)])
    mu2, ls2 = reference_node_params(prior, z_new, ctx, chain)
    assert out[0] == z[0] and out[1] == v  # non-descendant kept exactly, target fixed
    assert torch.allclose(out[2], mu2[2] + ls2[2].exp() * eps[2], atol=1e-5)

    out = prior.do(z[None], ctx[None], {0: -0.4}, adjacency=chain)[0]
    v0 = torch.tensor(-0.4)
    mu_a, ls_a = reference_node_params(prior, torch.stack([v0, z[1], z[2]]), ctx, chain)
    new1 = mu_a[1] + ls_a[1].exp() * eps[1]
    mu_b, ls_b = reference_node_params(prior, torch.stack([v0, new1, z[2]]), ctx, chain)
    assert torch.allclose(out, torch.stack([v0, new1, mu_b[2] + ls_b[2].exp() * eps[2]]), atol=1e-5)


def test_do_leaves_non_descendants_exactly():
    prior = make(z_dim=4)
    adj = graph(4, [(0, 2), (1, 3)])
    z, ctx = torch.randn(5, 4), torch.randn(5, 6)
    out = prior.do(z, ctx, {0: torch.full((5,), 2.0)}, adjacency=adj)
    assert torch.equal(out[:, [1, 3]], z[:, [1, 3]]) and torch.all(out[:, 0] == 2.0)
    assert not torch.allclose(out[:, 2], z[:, 2])
    out = prior.do(z, ctx, {3: 0.0, 2: 1.0}, adjacency=adj)
    assert torch.equal(out[:, :2], z[:, :2]) and torch.all(out[:, 2] == 1.0) and torch.all(out[:, 3] == 0.0)
    assert torch.equal(descendants(adj, [0]), torch.tensor([True, False, True, False]))


def test_do_round_trip_and_gradients():
    prior = make()
    z, ctx = torch.randn(4, 5), torch.randn(4, 6)
    assert prior.do(z, ctx, {}) is z
    same = prior.do(z, ctx, {0: z[:, 0]})  # abduct then predict with unchanged values
    assert torch.allclose(same, z, atol=1e-5)
    value = torch.tensor(0.3, requires_grad=True)
    zg = z.clone().requires_grad_(True)
    prior.do(zg, ctx, {1: value}).sum().backward()
    # the factual Z_1 still matters through the abducted noise of its descendants
    assert value.grad != 0 and zg.grad.abs().gt(0).all()
    with pytest.raises(IndexError):
        prior.do(z, ctx, {7: 0.0})


def test_sample_is_ancestral_and_seeded():
    prior = make()
    ctx = torch.randn(6, 6)
    adj = graph(5, [(0, 1), (1, 2), (0, 4)])
    z = prior.sample(ctx, adjacency=adj, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(6, 5, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(prior.abduct(z, ctx, adj), eps, atol=1e-5)
    a = prior.sample(ctx, generator=torch.Generator().manual_seed(2))
    b = prior.sample(ctx, generator=torch.Generator().manual_seed(2))
    assert a.shape == (6, 5) and torch.equal(a, b)
    assert prior.sample(None, n=3).shape == (3, 5) and torch.isfinite(prior.log_prob(a)).all()
