import torch

from causalsr.causal.counterfactuals import generate_counterfactual

KW = dict(alpha0=0.05, beta=0.0, gamma=0.1, delta=float("inf"), lam=0.0)


def _inputs(scale=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(2, 3, 16 * scale, 16 * scale, generator=g)
    lr = torch.nn.functional.avg_pool2d(hr, scale)
    return hr, lr, torch.zeros(2, 16)


def test_counterfactual_stays_in_image_range(make_tiny_model):
    model = make_tiny_model(2)
    hr, lr, ctx = _inputs()
    out = generate_counterfactual(model, hr, lr, ctx, **{**KW, "alpha0": 5.0, "beta": 5.0})
    assert out.x_cf.min() >= 0 and out.x_cf.max() <= 1
    assert out.x_cf.shape == hr.shape


def test_perturbation_shrinks_with_alpha0(make_tiny_model):
    model = make_tiny_model(2)
    hr, lr, ctx = _inputs()
    dists = []
    for a0 in (0.1, 0.01, 0.001):
        torch.manual_seed(1)  # same Z draw each time
        out = generate_counterfactual(model, hr, lr, ctx, **{**KW, "alpha0": a0})
        dists.append((out.x_cf - hr).flatten(1).norm(dim=1))
    assert torch.all(dists[0] > dists[1]) and torch.all(dists[1] > dists[2])


def test_alpha_follows_eq14_and_trains_h_psi(make_tiny_model):
    model = make_tiny_model(2)
    hr, lr, ctx = _inputs()
    out = generate_counterfactual(model, hr, lr, ctx, **KW)
    h = torch.sigmoid(model.h_psi(hr, lr))
    assert torch.allclose(out.h, h)
    assert torch.all(out.alpha >= KW["alpha0"] * h - 1e-7)  # (1 + gamma ||grad||) >= 1
    out.x_cf.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.h_psi.parameters())
    assert all(p.grad is None for p in model.posterior.parameters())  # g_kl, g_rec are X-gradients only


def test_line16_step_pulls_encoding_back_towards_the_posterior_mean(make_tiny_model):
    model = make_tiny_model(2)
    hr, lr, ctx = _inputs()
    base = {**KW, "alpha0": 0.2, "delta": 0.0}
    torch.manual_seed(3)
    no_fix = generate_counterfactual(model, hr, lr, ctx, **{**base, "lam": 0.0})
    torch.manual_seed(3)
    fixed = generate_counterfactual(model, hr, lr, ctx, **{**base, "lam": 0.002})
    assert torch.equal(no_fix.z, fixed.z)
    assert torch.equal(no_fix.z_ref, fixed.z_ref)
    d0 = (no_fix.z_cf - no_fix.z_ref).norm(dim=1)
    d1 = (fixed.z_cf - fixed.z_ref).norm(dim=1)
    assert fixed.corrected.all()
    assert torch.all(d1 < d0)


def test_line15_compares_means_so_an_unchanged_x_does_not_fire(make_tiny_model):
    """With no step at all (alpha0 = beta = 0), X' = X, so Z' equals the mean of q(Z | X, Y) and
    line 15 must not fire; against a posterior sample it fired always."""
    model = make_tiny_model(2)
    hr, lr, ctx = _inputs()
    out = generate_counterfactual(model, hr, lr, ctx, **{**KW, "alpha0": 0.0, "beta": 0.0, "delta": 1e-4})
    assert torch.allclose(out.z_cf, out.z_ref, atol=1e-6)
    assert not out.corrected.any()
    assert (out.z - out.z_ref).norm(dim=1).min() > 1e-4  # the sample differs, so it would have fired
