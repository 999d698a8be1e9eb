"""`Upscaler.analyze`'s result: the named degradation factors in physical units, with uncertainty from Sigma."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from causalsr.data.jpeg_container import ContainerQuality
from causalsr.factors import FACTORS, N_NAMED, calibrate, denormalise, scale_factors

_LABELS = {"blur": "blur sigma", "noise": "noise sigma", "jpeg": "JPEG quality"}
_UNITS = {"blur": "HR px", "jpeg": "10-100"}  # display units; "noise" keeps its "0-255"


@dataclass
class FactorEstimate:
    """One named degradation factor in physical units, with its posterior standard deviation."""

    name: str
    label: str
    unit: str
    value: float
    std: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.label} {self.value:.1f} +- {self.std:.1f} ({self.unit})"


@dataclass
class FactorReport:
    """What degradation the model sees: named factors with uncertainty from Sigma.

    Attributes:
        factors: name -> estimate (blur, noise, jpeg), values clipped to the factor's range.
        covariance: N_NAMED x N_NAMED posterior covariance of the named factors, physical units.
        correlation: the matching correlation matrix.
        z_mean: the full posterior mean (normalised latent coordinates).
        z_covariance: the full posterior covariance (normalised latent coordinates).
        container: for a JPEG file, the quality its quantisation tables state
            (`causalsr.data.jpeg_container`), beside the pixel-based "jpeg" estimate; the two
            differ on re-saved images. None for other inputs and for arrays.
    """

    factors: dict[str, FactorEstimate]
    covariance: np.ndarray
    correlation: np.ndarray
    z_mean: np.ndarray
    z_covariance: np.ndarray
    container: ContainerQuality | None = None

    def __str__(self) -> str:
        lines = [str(f) for f in self.factors.values()]
        if self.container is not None:
            lines.append(str(self.container))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "factors": {k: {"value": f.value, "std": f.std, "unit": f.unit, "label": f.label}
                        for k, f in self.factors.items()},
            "factor_order": list(self.factors),
            "covariance": self.covariance.tolist(),
            "correlation": self.correlation.tolist(),
            "z_mean": self.z_mean.tolist(),
            "z_covariance": self.z_covariance.tolist(),
            "container_jpeg": self.container.to_dict() if self.container is not None else None,
        }


def factor_report(q: torch.distributions.MultivariateNormal, sd_scale: Sequence[float] | None = None,
                  mean_knots: Mapping[str, Sequence[Sequence[float]]] | None = None) -> FactorReport:
    """The report of posterior q(Z | Y) (batch of one): its mean and covariance mapped to physical units.

    ``sd_scale`` multiplies each named factor's standard deviation (correlations unchanged): the interval
    calibration a model file carries (`ModelConfig.posterior_sd_scale`). ``mean_knots`` corrects each
    reading (`causalsr.factors.calibrate`; `ModelConfig.posterior_mean_knots`); `z_mean` stays the
    posterior's own mean, the one the restorer is told.
    """
    mean = q.mean[0].double().cpu()
    cov = q.covariance_matrix[0].double().cpu()
    span = scale_factors().double()
    if sd_scale is not None:
        span = span * torch.tensor(list(sd_scale), dtype=torch.float64)
    values = denormalise(mean[:N_NAMED])
    cov_named = cov[:N_NAMED, :N_NAMED] * torch.outer(span, span)
    std = cov_named.diagonal().sqrt()
    corr = cov_named / torch.outer(std, std)
    factors = {
        f.name: FactorEstimate(f.name, _LABELS.get(f.name, f.name), _UNITS.get(f.name, f.unit),
                               float(min(max(calibrate(f.name, values[i].item(), mean_knots), f.low), f.high)),
                               float(std[i]), f.low, f.high)
        for i, f in enumerate(FACTORS)
    }
    return FactorReport(factors, cov_named.numpy(), corr.numpy(), mean.numpy(), cov.numpy())
