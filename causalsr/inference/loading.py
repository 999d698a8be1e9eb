"""Loading a model for inference: a bundled name or a checkpoint path, with the command line's --scale rule."""
from __future__ import annotations

from pathlib import Path

import torch

from causalsr.inference import bundled
from causalsr.inference.devices import resolve_device
from causalsr.inference.upscaler import Upscaler


def load(name_or_path: str | Path = "x4", device: str | torch.device = "cpu", precision: str = "fp32") -> Upscaler:
    """Load a bundled model ("x2", "x3", "x4") or a model path: a hub-layout folder, a training export, an older file.

    `device` is a `torch.device` or a name: "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N", "mps".
    Raises FileNotFoundError (missing files) or ValueError (not a causalsr
    checkpoint, weights that do not match its architecture, an absent device),
    each with a one-line message.
    """
    from causalsr.models.model_file import load_pretrained

    if not isinstance(device, torch.device):
        device = resolve_device(device)
    model, meta = load_pretrained(bundled.resolve(name_or_path), map_location=str(device))
    return Upscaler(model, meta, device=device, precision=precision)


def load_for_scale(model: str | Path | None = None, scale: int | None = None, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> Upscaler:
    """`load` with the command line's --model/--scale rules.

    No `model`: the bundled model of `scale` (default x4). With both, the
    checkpoint must be of that scale, else a one-line ValueError.
    """
    name = str(model) if model is not None else f"x{scale or 4}"
    up = load(name, device=device, precision=precision)
    if scale is not None and up.scale != scale:
        raise ValueError(f"{name} is an x{up.scale} model, not x{scale}: drop --scale or pick an x{scale} model")
    return up
