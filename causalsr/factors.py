"""Named degradation factors: the first dimensions of the latent Z.

The synthetic degradation pipeline knows these values exactly, so an auxiliary
loss ties Z[..., :N_NAMED] to them (normalised to about [0, 1]). That makes the
named part of Z identifiable: `do(noise=0)` means something, and `analyze`
reports physical units with uncertainty taken from the posterior covariance.

Order is the pipeline's causal order (blur -> noise -> JPEG), which is also the
structured prior's fixed topological order.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Factor:
    """One named factor: physical range and the value that means "absent"."""

    name: str
    description: str
    unit: str
    low: float
    high: float
    absent: float

    def normalise(self, value):
        return (value - self.low) / (self.high - self.low)

    def denormalise(self, value):
        return value * (self.high - self.low) + self.low


FACTORS: tuple[Factor, ...] = (
    Factor("blur", "Gaussian blur sigma applied to the HR image", "px (HR)", 0.0, 4.0, 0.0),
    Factor("noise", "additive white Gaussian noise sigma", "0-255", 0.0, 50.0, 0.0),
    Factor("jpeg", "JPEG quality (100 = no compression)", "quality", 10.0, 100.0, 100.0),
)
FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS)
N_NAMED = len(FACTORS)


def factor_index(name: str) -> int:
    """Index of a named factor in Z; clear error for unknown names."""
    try:
        return FACTOR_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown degradation factor {name!r}; known: {', '.join(FACTOR_NAMES)}") from None


def normalise(values: torch.Tensor) -> torch.Tensor:
    """Physical values (..., N_NAMED) -> normalised latent coordinates."""
    lows = values.new_tensor([f.low for f in FACTORS])
    highs = values.new_tensor([f.high for f in FACTORS])
    return (values - lows) / (highs - lows)


def denormalise(z_named: torch.Tensor) -> torch.Tensor:
    """Normalised latent coordinates (..., N_NAMED) -> physical values."""
    lows = z_named.new_tensor([f.low for f in FACTORS])
    highs = z_named.new_tensor([f.high for f in FACTORS])
    return z_named * (highs - lows) + lows


def scale_factors() -> torch.Tensor:
    """Per-factor (high - low): multiplies a normalised standard deviation into physical units."""
    return torch.tensor([f.high - f.low for f in FACTORS])


def calibrate(name: str, value: float, knots: Mapping[str, Sequence[Sequence[float]]] | None) -> float:
    """Reading `value` of factor `name` corrected by its knots ``[readings, levels]``.

    The knots are a model's `ModelConfig.posterior_mean_knots` (training/mean_calibration.py).

    The correction (level - reading) is interpolated linearly between knots and held constant beyond them,
    so the map is monotone (readings and levels both increase) and the identity for a factor without knots.
    """
    if not knots or name not in knots:
        return value
    reads, levels = knots[name]
    return value + float(np.interp(value, reads, np.subtract(levels, reads)))
