"""Shared pytest fixtures; plain helpers live in tests/helpers.py."""
import functools

import pytest

from helpers import tiny_model


@pytest.fixture
def make_tiny_model():
    """Factory: `make_tiny_model(scale, **cfg_overrides)` -> `helpers.tiny_model(..., inference=False)`."""
    return functools.partial(tiny_model, inference=False)
