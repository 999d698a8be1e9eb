"""Each loss term's gradient reaches the parameters it is meant to train (issue 13).

With every weight but one at zero, one backward of the block losses must give
non-zero gradients to the parts that term trains. L_con failed this while its
inputs were detached: it trained the heads f, g only, never the posterior.
"""
import numpy as np
import pytest
import torch

from causalsr.data.degradations import degrade_batch, preset
from causalsr.training.losses import LossConfig, Objective

OFF = dict(w_rec=0.0, w_causal=0.0, w_cf=0.0, w_int=0.0, w_con=0.0, w_struct=0.0, w_sem=0.0, w_aux=0.0,
           w_adv=0.0, w_consistency=0.0, cf_div=0.0, p_oracle=0.0)

# weight(s) switched on -> parts that must receive a gradient
REACH = {
    "rec": ({"w_rec": 1.0}, {"restorer"}),  # reaches sct too once the zero-initialised FiLM heads have moved
    "causal (KL)": ({"w_causal": 1.0}, {"posterior", "prior"}),
    "struct": ({"w_struct": 1.0}, {"posterior"}),
    "aux": ({"w_aux": 1.0}, {"posterior"}),
    "cf": ({"w_cf": 1.0}, {"posterior", "mechanism", "restorer"}),
    "con": ({"w_con": 1.0}, {"posterior", "f_head", "g_head"}),
    "sem": ({"w_sem": 1.0}, {"sct", "h_psi"}),
    "int": ({"w_int": 1.0}, {"mechanism", "intervention"}),
    "adv (discriminator)": ({"w_adv": 1.0}, {"discriminator"}),
    "cf diversity": ({"cf_div": 1.0, "cf_budget": 1.0}, {"h_psi"}),  # below its budget
}


def _batch(scale=2, n=4, size=16):
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(n, 3, size * scale, size * scale, generator=g)
    names = ("blur+noise", "jpeg", "noise", "bicubic")
    params = [preset(names[i % len(names)], scale, seed=i) for i in range(n)]
    factors = torch.from_numpy(np.stack([p.factors() for p in params])).float()
    return {"hr": hr, "lr": degrade_batch(hr, params), "factors": factors, "params": [p.to_dict() for p in params]}


def _reached(model, weights: dict) -> set[str]:
    model.train()
    known = LossConfig.__dataclass_fields__
    cfg = LossConfig(**{k: v for k, v in {**OFF, **weights}.items() if k in known})
    out = Objective(model, cfg)(_batch(), step=0, total_steps=10)
    sum(out.block_losses.values()).backward()
    parts = set()
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            parts.add(name.split(".")[0])
    return parts


@pytest.mark.parametrize("term", list(REACH))
def test_term_reaches_its_parts(make_tiny_model, term):
    weights, expected = REACH[term]
    reached = _reached(make_tiny_model(2), weights)
    assert expected <= reached, f"{term}: no gradient reaches {sorted(expected - reached)}"


def test_all_weights_off_train_nothing(make_tiny_model):
    assert _reached(make_tiny_model(2), {}) == set()
