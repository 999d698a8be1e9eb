import math

import numpy as np
import pytest
import torch

from causalsr.data.degradations import preset
from causalsr.training.losses import (
    LossConfig,
    Objective,
    hierarchical_contrastive,
    info_nce,
    named_factor_nll,
    structure_penalty,
)


def test_contrastive_minimal_for_coinciding_positives_and_orthogonal_negatives():
    n, tau = 4, 0.5
    eye = torch.eye(n)
    best = info_nce(eye, eye, tau)
    # closed form: -log(e^{1/tau} / (e^{1/tau} + (n - 1) e^0))
    assert math.isclose(best.item(), -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + n - 1)), rel_tol=1e-6)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        q = eye + 0.3 * torch.randn(n, n, generator=g)
        k = eye + 0.3 * torch.randn(n, n, generator=g)
        assert info_nce(q, k, tau) > best
    assert math.isclose(hierarchical_contrastive(eye, eye, eye, eye, tau, 0.5).item(), 1.5 * best.item(), rel_tol=1e-6)


def test_structure_penalty_is_off_diagonal_frobenius_norm():
    cov = torch.tensor([[[2.0, 0.3], [0.3, 1.0]]])
    assert math.isclose(structure_penalty(cov).item(), math.sqrt(2 * 0.09), rel_tol=1e-6)
    assert structure_penalty(torch.diag_embed(torch.rand(3, 4))).item() == 0.0


def test_named_factor_nll_uses_the_full_covariance_marginal():
    from torch.distributions import MultivariateNormal

    from causalsr.factors import normalise

    L = torch.tensor([[1.0, 0, 0, 0], [0.5, 1.0, 0, 0], [0.2, -0.3, 0.8, 0], [0.1, 0.1, 0.1, 1.0]]) * 0.2
    q = MultivariateNormal(torch.zeros(1, 4), scale_tril=L.unsqueeze(0))
    factors = torch.tensor([[1.0, 10.0, 80.0]])
    cov = (L @ L.T)[:3, :3]
    ref = -MultivariateNormal(torch.zeros(3), covariance_matrix=cov).log_prob(normalise(factors)[0])
    assert math.isclose(named_factor_nll(q, factors).item(), ref.item(), rel_tol=1e-5)
    assert named_factor_nll(q, torch.full((1, 3), float("nan"))).item() == 0.0


def _batch(scale, n=2, size=48, presets=("blur+noise", "jpeg")):
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(n, 3, size * scale, size * scale, generator=g)
    from causalsr.data.degradations import degrade_batch
    params = [preset(presets[i % len(presets)], scale, seed=i) for i in range(n)]
    lr = degrade_batch(hr, params)
    factors = torch.from_numpy(np.stack([p.factors() for p in params])).float()
    return {"hr": hr, "lr": lr, "factors": factors, "params": [p.to_dict() for p in params]}


def test_block_losses_are_gradient_isolated(make_tiny_model):
    model = make_tiny_model(2)
    model.train()
    out = Objective(model, LossConfig())(_batch(2, size=16), step=0, total_steps=10)
    blocks = model.parameter_blocks()
    owner = {id(p): b for b, ps in blocks.items() for p in ps}
    params = [p for ps in blocks.values() for p in ps]
    for b, loss in out.block_losses.items():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        touched = {owner[id(p)] for p, g in zip(params, grads) if g is not None and g.abs().sum() > 0}
        assert touched == {b}, (b, touched)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_full_objective_forward_backward_every_scale(make_tiny_model, scale):
    model = make_tiny_model(scale)
    model.train()
    out = Objective(model, LossConfig())(_batch(scale), step=0, total_steps=10)
    sum(out.block_losses.values()).backward()
    assert {"rec", "causal", "cf", "int", "con", "struct", "sem", "aux"} <= set(out.terms)
    assert all(torch.isfinite(v) for v in out.terms.values())
    for block, ps in model.parameter_blocks().items():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ps), block


@pytest.mark.parametrize("switch", ["use_cf", "use_int", "use_sp", "use_sct", "plain"])
def test_full_objective_every_ablation(make_tiny_model, switch):
    model = make_tiny_model(4, **{switch: switch == "plain"})
    model.train()
    out = Objective(model, LossConfig())(_batch(4), step=0, total_steps=10)
    sum(out.block_losses.values()).backward()
    assert all(torch.isfinite(v) for v in out.terms.values())
    assert ("cf" in out.terms) == (switch not in ("use_cf", "plain"))
    assert ("int" in out.terms) == (switch not in ("use_int", "plain"))
    sr = model.eval()(out_lr := _batch(4, n=1, size=7)["lr"])
    assert sr.shape[-2:] == (28, 28) and out_lr.shape[-1] == 7
