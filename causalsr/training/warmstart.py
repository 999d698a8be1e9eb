"""Starting a run from other weights: warm start (copy what fits, grow widened inputs) and re-initialising a part."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from causalsr.models.file_format import CONFIG_KEY, ENCODER_PREFIX, upgrade_names
from causalsr.stems import model_files
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


def read_model_tensors(path: Path, option: str) -> dict[str, torch.Tensor]:
    """The tensors of model file `path` (a folder, stem or file) under current names (`upgrade_names`);
    TrainingError naming `option` when it is absent."""
    from safetensors.torch import load_file

    file, _ = model_files(path)
    if not file.is_file():
        raise TrainingError(f"{file}: {option} model not found")
    source = load_file(str(file))
    source.pop(CONFIG_KEY, None)
    return upgrade_names(source)


def warm_start(model: torch.nn.Module, path: Path) -> tuple[int, int]:
    """Copy every tensor of checkpoint `path` whose name and shape match `model`; returns (copied, total).

    Reads safetensors only (a model folder, stem or training checkpoint). Used to
    start an x2/x3 run from an x4 model: the layers whose shape depends on the
    scale keep their fresh initialisation.
    A conv that gained input channels (`factor_maps`) keeps the old weights
    in its leading channels and starts the new ones at zero.
    """
    source = read_model_tensors(path, "run.init_from")
    state = model.state_dict()
    # The frozen encoder is not copied: the run keeps its package weights, which its checkpoints leave out.
    source = {k: v for k, v in source.items() if not k.startswith(ENCODER_PREFIX)}
    matched = {k: v for k, v in source.items() if k in state and state[k].shape == v.shape}
    matched.update({k: grown_input(v, state[k]) for k, v in source.items()
                    if k in state and is_grown_input(v, state[k])})
    model.load_state_dict(matched, strict=False)
    print(f"causalsr train: warm start from {path}: {len(matched)} of {len(state)} tensors copied", file=sys.stderr)
    return len(matched), len(state)


@torch.no_grad()
def graft_context(model, donor: dict[str, torch.Tensor], probes: list[torch.Tensor]) -> int:
    """Give `model` (a `CausalSR`) the donor's SCT and context trunk without changing what it computes.

    For a model whose context collapsed to a constant (C and the context trunk's
    output the same for every image), the donor's live ones are copied in, and
    the layers that read them are re-biased: each level's context conv gets
    weight 0 and bias W t0 + b, the cond trunk's pooled-C columns weight 0 and
    bias W p0 + b, with t0 and p0 the old constants measured on `probes` (LR
    images). The restorer then starts exactly where it was, and training grows
    the zeroed weights from a context that varies. Returns the tensors copied.
    """
    from causalsr.evaluation.liveness import capture_trunks
    from causalsr.models.backbone import LevelConditioning

    was_training = model.training
    model.eval()
    conditioning = model.restorer.conditioning
    trunks: list = []
    pooled = []
    try:
        with capture_trunks(conditioning, trunks):
            for lr in probes:
                z, tokens, p = model.condition(lr)
                pooled.append(p)
                model.restore(lr, z, tokens, p)
    finally:
        model.train(was_training)
    t0, p0 = torch.cat([ctx for _, ctx in trunks]).mean(0), torch.cat(pooled).mean(0)
    state = model.state_dict()
    copied = {k: v for k, v in donor.items()
              if k.startswith(("sct.", "restorer.conditioning.ctx.")) and k in state and state[k].shape == v.shape}
    model.load_state_dict(copied, strict=False)
    for level in model.restorer.modules():
        if isinstance(level, LevelConditioning):
            bias = level.ctx.bias
            assert bias is not None  # LevelConditioning builds its convs with a bias
            bias += level.ctx.weight[:, :, 0, 0] @ t0
            level.ctx.weight.zero_()
    first = conditioning.cond[0]
    zd = model.cfg.z_dim
    first.bias += first.weight[:, zd:] @ p0
    first.weight[:, zd:] = 0.0
    print(f"causalsr train: context grafted ({len(copied)} tensors), its readers re-biased", file=sys.stderr)
    return len(copied)


def graft_context_from(model, path: Path) -> int:
    """`graft_context` with the donor read from model `path` and the liveness probe images."""
    from causalsr.evaluation.liveness import probe_images

    donor = read_model_tensors(path, "run.context_from")
    lrs, _ = probe_images(model.scale, n=8)
    device = next(model.parameters()).device
    donor = {k: v.to(device) for k, v in donor.items()}
    return graft_context(model, donor, [torch.cat(lrs).to(device)])
