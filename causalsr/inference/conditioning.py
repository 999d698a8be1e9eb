"""What a restoration is conditioned on: Z and the context C of a whole image, and do() values for Z."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from causalsr.factors import FACTORS, factor_index


@dataclass
class Conditioning:
    """Per-image conditioning, computed once and shared by every tile.

    Attributes:
        z: latent Z (1, z_dim) used for restoration (posterior mean, a sample,
            or an intervened value); None for a plain model.
        tokens: spatial context tokens C (1, N, d) or None.
        pooled: pooled context (1, d).
        posterior: q(Z | Y) of the whole image (None for a plain model).
    """

    z: torch.Tensor | None
    tokens: torch.Tensor | None
    pooled: torch.Tensor
    posterior: torch.distributions.MultivariateNormal | None


def normalise_do(do: Mapping[str, float]) -> dict[int, float]:
    """{factor name: physical value} -> {index in Z: normalised value}.

    ValueError for unknown names or values out of range.
    """
    values = {}
    for name, value in do.items():
        try:
            index = factor_index(name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        f = FACTORS[index]
        if not f.low <= float(value) <= f.high:
            raise ValueError(f"do({name}={value:g}): outside the factor's range {f.low:g}..{f.high:g} ({f.unit})")
        values[index] = float(f.normalise(float(value)))
    return values
