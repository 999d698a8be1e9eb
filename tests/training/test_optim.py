"""CausalAdam (Eq. 26) and the step LR schedule."""
import copy

import torch

from causalsr.training.optim import CausalAdam, make_scheduler, step_lr_lambda


def _toy(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x, y = torch.randn(16, 5, generator=g), torch.randn(16, 2, generator=g)
    return model, x, y


def _train(model, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_without_clamp_matches_torch_adam_exactly():
    a, x, y = _toy()
    b = copy.deepcopy(a)
    _train(a, CausalAdam(a.parameters(), lr=1e-2, ratio_clamp=False), x, y, 25)
    _train(b, torch.optim.Adam(b.parameters(), lr=1e-2, foreach=False), x, y, 25)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_clamp_shrinks_step_by_gradient_norm_ratio():
    """When the gradient norm grows, the step is exactly the unclamped one times ||g_{t-1}|| / ||g_t||."""
    p_clamp = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    p_plain = torch.nn.Parameter(p_clamp.detach().clone())
    opt_c = CausalAdam([p_clamp], lr=0.1, ratio_clamp=True)
    opt_p = CausalAdam([p_plain], lr=0.1, ratio_clamp=False)
    g1 = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
    g2 = 3 * g1 + torch.tensor([0.0, 0.05, 0.0], dtype=torch.float64)
    for g in (g1, g2):
        before_c, before_p = p_clamp.detach().clone(), p_plain.detach().clone()
        p_clamp.grad, p_plain.grad = g.clone(), g.clone()
        opt_c.step()
        opt_p.step()
    step_c, step_p = p_clamp.detach() - before_c, p_plain.detach() - before_p
    ratio = g1.norm() / g2.norm()
    torch.testing.assert_close(step_c, step_p * ratio, rtol=1e-12, atol=0)
    # A shrinking gradient is not amplified (min(1, .)).
    before_c, before_p = p_clamp.detach().clone(), p_plain.detach().clone()
    p_clamp.grad, p_plain.grad = g1.clone(), g1.clone()
    opt_c.step()
    opt_p.step()
    torch.testing.assert_close(p_clamp.detach() - before_c, p_plain.detach() - before_p)


def test_state_dict_round_trip_continues_identically():
    a, x, y = _toy(1)
    opt_a = CausalAdam(a.parameters(), lr=5e-3)
    _train(a, opt_a, x, y, 5)
    b = copy.deepcopy(a)
    opt_b = CausalAdam(b.parameters(), lr=5e-3)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert "prev_grad_norm" in opt_b.state_dict()["state"][0]
    _train(a, opt_a, x, y, 5)
    _train(b, opt_b, x, y, 5)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_step_schedule_halves():
    f = step_lr_lambda(200_000)
    assert (f(0), f(199_999), f(200_000), f(400_000)) == (1.0, 1.0, 0.5, 0.25)
    assert step_lr_lambda(0)(10**9) == 1.0
    p = torch.nn.Parameter(torch.zeros(1))
    opt = CausalAdam([p], lr=2e-4)
    sched = make_scheduler(opt, 3)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(1)
        opt.step()
        sched.step()
    assert lrs == [2e-4] * 3 + [1e-4] * 3 + [5e-5]
