"""psi's perturbation reward is a hinge: it pulls alpha up below cf_budget and not at all above it.

Without a bound the reward saturated h_psi at 1 (0.99 on the GPU run); without the reward
L_sem's first term drove h_psi to 0 (5e-5 in the bundled x4 before issue 13's fix).
"""
import pytest
import torch

from causalsr.training.losses import LossConfig, Objective
from tests.training.test_loss_reach import OFF, _batch


def _bias_grad(model, bias: float, **weights) -> tuple[float, float]:
    """(d psi-block loss / d h_psi's output bias, alpha0 * h: a lower bound of alpha) at logit `bias`."""
    model.train()
    last = model.h_psi.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(bias)
    objective = Objective(model, LossConfig(**{**OFF, **weights}))
    out = objective(_batch(), step=0, total_steps=10)
    sum(out.block_losses.values()).backward()
    h = torch.sigmoid(torch.tensor(bias))
    return float(last.bias.grad), float(h) * objective.cfg.cf_alpha0


@pytest.mark.parametrize("bias", [-6.0, -2.0])
def test_reward_pulls_alpha_up_below_budget(make_tiny_model, bias):
    grad, _ = _bias_grad(make_tiny_model(2), bias, cf_div=1.0, cf_budget=0.01)
    # with L_sem off, only the reward acts: a non-zero pull proves alpha is below the budget
    assert grad < 0.0  # gradient descent raises the logit, so h and alpha grow


@pytest.mark.parametrize("bias", [2.0, 6.0])
def test_reward_is_flat_above_budget(make_tiny_model, bias):
    grad, alpha = _bias_grad(make_tiny_model(2), bias, cf_div=1.0, cf_budget=0.01)
    assert alpha > 0.01
    assert grad == 0.0


def test_sem_term_pushes_alpha_down_above_budget(make_tiny_model):
    # Above the budget only L_sem's first term acts on psi, and it shrinks the perturbation.
    grad, _ = _bias_grad(make_tiny_model(2), 2.0, cf_div=1.0, cf_budget=0.01, w_sem=1.0)
    assert grad > 0.0
