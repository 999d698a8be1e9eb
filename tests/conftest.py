"""Shared pytest fixtures; plain helpers live in tests/helpers.py."""
import pytest
import torch



def tiny_config(scale: int = 2, **overrides):
    from causalsr.models.config import ModelConfig

    base = dict(
        scale=scale, z_dim=6, posterior_feats=8, sct_dim=16, sct_heads=2, prior_hidden=8,
        mechanism_feats=4, intervention_hidden=16, contrast_dim=8,
        backbone_args={"n_feats": 8, "n_blocks": 1, "cond_hidden": 8},
        semantic_args={"input_size": 64},
    )
    base.update(overrides)
    return ModelConfig(**base)


@pytest.fixture
def make_tiny_model():
    """Factory: `make_tiny_model(scale, **cfg_overrides)` -> CausalSR with fixed seed."""
    from causalsr.models.causalsr import CausalSR

    def make(scale: int = 2, **overrides):
        torch.manual_seed(0)
        return CausalSR(tiny_config(scale, **overrides))

    return make
