"""Paper properties of the composed model that no single component test covers.

Eq. 3 (the ELBO assembled from q_phi, p(Z) and p(Y | X, Z)), Eq. 7 (E frozen
inside the full model), Eq. 23's L_rec formula, Eq. 27 (warm-up curriculum),
Algorithm 2 line 1 (Xavier initialisation) and line 20 (momentum encoder).
See docs/paper-mapping.md.
"""
import math

import torch

from causalsr.training.losses import LossConfig, Objective, image_gradients, reconstruction_loss, smoothed


def _pair(scale=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(2, 3, size * scale, size * scale, generator=g)
    return hr, torch.nn.functional.avg_pool2d(hr, scale)


def test_eq3_elbo_assembles_and_lower_bounds_the_evidence(make_tiny_model):
    """ELBO = E_q[log p(Y|X,Z)] - KL(q || p(Z)) from the mechanism, the posterior and the prior.

    With the same draws, E_q[log p(Y|X,Z)] - prior.kl(q) equals the mean of the
    importance log-weights log p(Y|X,Z) + log p(Z) - log q(Z) (so KL has the
    sign E_q[log q - log p]); by Jensen it is below their log-mean-exp, the
    importance-weighted estimate of log p(Y | X).
    """
    model = make_tiny_model(2)
    model.eval()
    hr, lr = _pair()
    ctx = torch.randn(2, model.cfg.sct_dim)
    adj = model.prior.expected_adjacency().detach()
    k = 64
    with torch.no_grad():
        q = model.posterior(lr, hr, drop_hr=torch.zeros(2, dtype=torch.bool))
        torch.manual_seed(0)
        kl = model.prior.kl(q, ctx, n_samples=k, adjacency=adj)
        torch.manual_seed(0)
        z = q.rsample((k,))  # the same draws as inside kl()
        loglik = torch.stack([model.mechanism.log_likelihood(lr, hr, z[i]) for i in range(k)])
        log_w = loglik + model.prior.log_prob(z, ctx, adj) - q.log_prob(z)
    elbo = loglik.mean(0) - kl
    assert torch.allclose(elbo, log_w.mean(0), rtol=1e-5)
    iw_evidence = torch.logsumexp(log_w, 0) - math.log(k)
    assert torch.all(elbo <= iw_evidence)
    assert torch.all(kl > 0)


def test_eq7_encoder_is_frozen_inside_the_model(make_tiny_model):
    """E gets no gradient from the full objective, sits in no optimiser block, is not in training checkpoints,
    stays in eval."""
    from causalsr.training.checkpoint import weights_state

    model = make_tiny_model(2)
    model.train()
    assert not any(m.training for m in model.semantic.modules())
    before = {k: v.clone() for k, v in model.semantic.state_dict().items()}
    hr, lr = _pair()
    batch = {"hr": hr, "lr": lr, "factors": torch.full((2, 3), float("nan")), "params": None}
    out = Objective(model, LossConfig())(batch, step=0, total_steps=10)
    sum(out.block_losses.values()).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.semantic.parameters())
    in_blocks = {id(p) for ps in model.parameter_blocks().values() for p in ps}
    assert not in_blocks & {id(p) for p in model.semantic.parameters()}
    assert not any(k.startswith("semantic.") for k in weights_state(model))
    after = model.semantic.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics untouched too
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.sct.parameters())


def test_eq23_rec_loss_formula():
    """L_rec = ||Y - f||_2^2 + gamma ||nabla Y - nabla f||_1 (means over elements; 'l1' swaps the first norm)."""
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 5, 7, generator=g), torch.rand(2, 3, 5, 7, generator=g)
    gamma = 0.3

    def dy(x):
        return x[..., 1:, :] - x[..., :-1, :]

    def dx(x):
        return x[..., :, 1:] - x[..., :, :-1]

    grad = (dy(pred) - dy(target)).abs().mean() + (dx(pred) - dx(target)).abs().mean()
    assert torch.allclose(reconstruction_loss(pred, target, gamma), (pred - target).pow(2).mean() + gamma * grad)
    assert torch.allclose(reconstruction_loss(pred, target, gamma, "l1"), (pred - target).abs().mean() + gamma * grad)
    assert [t.shape for t in image_gradients(pred)] == [(2, 3, 4, 7), (2, 3, 5, 6)]


def test_eq27_warm_up_blends_hr_with_its_smoothed_version(make_tiny_model):
    """X_t = a_t X + (1 - a_t) X~, a_t = min(1, t / T_warm), X~ a Gaussian-smoothed X."""
    hr, lr = _pair()
    const = torch.full((1, 3, 12, 12), 0.3)
    assert torch.allclose(smoothed(const, 1.5), const)  # X~ keeps flat images (mean-preserving kernel)

    def tv(x):
        return sum(d.abs().mean() for d in image_gradients(x))

    assert tv(smoothed(hr, 1.5)) < 0.5 * tv(hr)  # ...and removes detail
    model = make_tiny_model(2, plain=True)
    model.eval()
    cfg = LossConfig(t_warm=10, warm_sigma=1.5)
    objective = Objective(model, cfg)
    batch = {"hr": hr, "lr": lr, "factors": torch.full((2, 3), float("nan")), "params": None}
    with torch.no_grad():
        sr = model.restore(lr, None, None, lr.new_zeros(2, model.cfg.sct_dim))
        for step in (0, 5, 10, 20):
            a = min(1.0, step / cfg.t_warm)
            target = a * hr + (1 - a) * smoothed(hr, cfg.warm_sigma)
            rec = objective(batch, step, 100).terms["rec"]
            assert torch.allclose(rec, reconstruction_loss(sr, target, cfg.grad_gamma, cfg.rec_norm), rtol=1e-5)


def test_alg2_line1_xavier_initialisation(make_tiny_model):
    """Conv/linear weights are Xavier-uniform with zero bias, except layers that must start at zero."""
    model = make_tiny_model(2)
    checked = 0
    for name, m in model.named_modules():
        if name.startswith("semantic") or not isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if getattr(m, "keep_init", False):
            assert m.weight.abs().sum() == 0  # identity-at-start conditioning / residual outputs
            continue
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound + 1e-7, name
        if m.weight.numel() >= 64:  # enough draws to come close to the bound
            assert m.weight.abs().max() > 0.8 * bound, name
        assert m.bias is None or m.bias.abs().sum() == 0, name
        checked += 1
    assert checked > 20


def test_alg2_line20_momentum_encoder_is_an_ema(make_tiny_model):
    """f_m <- m f_m + (1 - m) f for both contrastive heads; the momentum copies are never optimised."""
    model = make_tiny_model(2)
    in_blocks = {id(p) for ps in model.parameter_blocks().values() for p in ps}
    for online, ema in ((model.f_head, model.f_momentum), (model.g_head, model.g_momentum)):
        assert all(torch.equal(p, q) for p, q in zip(online.parameters(), ema.parameters()))  # starts as a copy
        assert not any(q.requires_grad or id(q) in in_blocks for q in ema.parameters())
        with torch.no_grad():
            for q in ema.parameters():
                q.fill_(1.0)
    model.momentum_update(0.9)
    for online, ema in ((model.f_head, model.f_momentum), (model.g_head, model.g_momentum)):
        for p, q in zip(online.parameters(), ema.parameters()):
            assert torch.allclose(q, 0.9 + 0.1 * p)
