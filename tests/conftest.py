"""Shared pytest fixtures; plain helpers live in tests/helpers.py."""
import pytest
import torch

from helpers import tiny_config


@pytest.fixture
def make_tiny_model():
    """Factory: `make_tiny_model(scale, **cfg_overrides)` -> CausalSR with fixed seed."""
    from causalsr.models.causalsr import CausalSR

    def make(scale: int = 2, **overrides):
        torch.manual_seed(0)
        return CausalSR(tiny_config(scale, **overrides))

    return make
