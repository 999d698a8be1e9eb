"""Starting a run from other weights: warm start (copy what fits, grow widened inputs) and re-initialising a part."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from causalsr.stems import files_of, stem_of
from causalsr.training.errors import TrainingError


def is_grown_input(source: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether `target` is conv weight `source` with more input channels (e.g. factor maps added to the input)."""
    return (source.dim() == 4 and target.dim() == 4 and source.shape[0] == target.shape[0]
            and source.shape[2:] == target.shape[2:] and source.shape[1] < target.shape[1])


def grown_input(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`source` in the leading input channels, zeros in the new ones: the grown layer computes what `source` did."""
    out = torch.zeros_like(target)
    out[:, :source.shape[1]] = source
    return out


def reinitialise(model: torch.nn.Module, name: str) -> None:
    """Fresh weights (each layer's own `reset_parameters`) for submodule `name` of `model`."""
    part = getattr(model, name, None)
    if not isinstance(part, torch.nn.Module):
        raise TrainingError(f"run.reinit: the model has no part {name!r}")
    for layer in part.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()  # type: ignore[operator]  # torch types Module attributes as Tensor | Module
    print(f"causalsr train: {name} re-initialised", file=sys.stderr)


def warm_start(model: torch.nn.Module, path: Path) -> tuple[int, int]:
    """Copy every tensor of checkpoint `path` whose name and shape match `model`; returns (copied, total).

    Reads safetensors only. Used to start an x2/x3 run from an x4 model: the
    layers whose shape depends on the scale keep their fresh initialisation.
    A conv that gained input channels (`factor_maps`) keeps the old weights
    in its leading channels and starts the new ones at zero.
    """
    from safetensors.torch import load_file

    file, _ = files_of(stem_of(path))
    if not file.is_file():
        raise TrainingError(f"{file}: run.init_from checkpoint not found")
    source = load_file(str(file))
    state = model.state_dict()
    matched = {k: v for k, v in source.items() if k in state and state[k].shape == v.shape}
    matched.update({k: grown_input(v, state[k]) for k, v in source.items()
                    if k in state and is_grown_input(v, state[k])})
    model.load_state_dict(matched, strict=False)
    print(f"causalsr train: warm start from {file}: {len(matched)} of {len(state)} tensors copied", file=sys.stderr)
    return len(matched), len(state)
