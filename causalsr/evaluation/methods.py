"""Super-resolution methods the `eval` harness can benchmark, behind one small interface.

A method is an object with ``name``, ``scales`` (the integer factors it supports)
and ``upscale(lr, scale) -> sr``, where ``lr`` is a uint8 HxWx3 RGB array and
``sr`` a uint8 (s*H)x(s*W)x3 array. `METHODS` maps names to zero-argument
factories; peers and our own models are registered lazily, so benchmarking
bicubic never imports them. `load_method` also accepts a checkpoint path.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from causalsr.data.imresize import imresize_uint8
from causalsr.registry import Registry


class Method(Protocol):
    name: str
    scales: tuple[int, ...]

    def upscale(self, lr: np.ndarray, scale: int) -> np.ndarray: ...


def check_scale(method: Method, scale: int) -> None:
    """Raise a one-line ValueError when `method` cannot run at `scale`."""
    if scale not in method.scales:
        supported = ", ".join(f"x{s}" for s in method.scales)
        raise ValueError(f"method {method.name!r} supports {supported}, not x{scale}")


class Bicubic:
    """MATLAB-exact bicubic upscaling of the uint8 LR (`imresize(lr, s)` with uint8 rounding)."""

    name = "bicubic"
    scales: tuple[int, ...] = (2, 3, 4, 8)

    def upscale(self, lr: np.ndarray, scale: int) -> np.ndarray:
        check_scale(self, scale)
        return imresize_uint8(lr, float(scale))


def tell_factors(cond, values: Mapping[int, float]):
    """Conditioning told the degradation: Z's named dims overwritten with `values` ({factor index: normalised value}).

    `cond` is the inference API's `Conditioning` (z, tokens, pooled, ...). The
    dims are set directly, not through the prior's do(): the oracle is told the
    true degradation, so nothing else in Z is recomputed from it.
    """
    from dataclasses import replace

    if cond.z is None:
        raise ValueError("this model has no degradation latent Z (plain model)")
    z = cond.z.clone()
    for index, value in values.items():
        z[..., index] = value
    return replace(cond, z=z)


class CausalSRMethod:
    """Our models through the public inference API (`causalsr.inference.api.load`).

    With no path it uses the bundled model of each scale ("x2", "x3", "x4");
    with a path, the exported checkpoint there (its scale only).

    `upscale` restores blind (Z = posterior mean of q(Z | Y)) by default. With
    `told` ({factor index: normalised value}) the named dims of that Z are
    replaced by the given values (`tell_factors`, the oracle); with `do`
    ({factor: physical value}) the API's do(), the structured prior's
    do-operator, is applied on top (`Upscaler.intervene`).
    """

    conditionable = True
    scales: tuple[int, ...]

    def __init__(self, path: str | Path | None = None, device=None):
        from causalsr.inference.api import load  # optional until the inference API exists

        self._load = load
        self._device = "cpu" if device is None else device
        self._path = None if path is None else str(path)
        self._models: dict[int, object] = {}
        if self._path is None:
            self.name, self.scales = "causalsr", (2, 3, 4)
        else:
            model = load(self._path, device=self._device)
            self.name, self.scales = Path(self._path).name, (int(model.scale),)
            self._models[int(model.scale)] = model

    def upscaler(self, scale: int):
        """The `Upscaler` of `scale` (loaded on first use)."""
        check_scale(self, scale)
        if scale not in self._models:
            self._models[scale] = self._load(f"x{scale}", device=self._device)
        return self._models[scale]

    def has_named_factors(self, scale: int) -> bool:
        """Whether the model of `scale` has a degradation latent Z with the named factors (not a plain model)."""
        model = self.upscaler(scale).model
        return not getattr(getattr(model, "cfg", None), "plain", True)

    def upscale(self, lr: np.ndarray, scale: int, do: Mapping[str, float] | None = None,
                told: Mapping[int, float] | None = None) -> np.ndarray:
        up = self.upscaler(scale)
        if not do and not told:
            return np.asarray(up.upscale(lr))
        cond = up.condition(lr)
        if told:
            cond = tell_factors(cond, told)
        if do:
            cond = up.intervene(cond, do)
        return np.asarray(up.upscale(lr, conditioning=cond))


METHODS = Registry("method")
METHODS.add("bicubic", Bicubic)
METHODS.register_lazy("dat-light", "causalsr.evaluation.peers:DATLight", extra="peers")
METHODS.register_lazy("span", "causalsr.evaluation.peers:SPAN", extra="peers")
METHODS.register_lazy("realesrgan", "causalsr.evaluation.peers:RealESRGAN", extra="peers")
METHODS.add("causalsr", CausalSRMethod)


def load_method(spec: str, device=None) -> Method:
    """A method by registered name, or our model from a checkpoint path.

    `device` (a torch device or name, see `causalsr.inference.devices`) is where our models run; the
    peers run on their own runtimes (CPU) whatever it is.
    """
    if spec == "causalsr":
        return CausalSRMethod(device=device)
    if spec in METHODS:
        return METHODS.get(spec)()
    if Path(spec).exists() or Path(spec + ".safetensors").exists():  # a checkpoint file or its stem
        return CausalSRMethod(spec, device=device)
    raise KeyError(f"unknown method {spec!r}: not a file and not one of {', '.join(METHODS.names())}")
