"""Model files: `save_pretrained` / `load_pretrained` (`<stem>.safetensors` + `<stem>.json`) and config overrides.

The weights are safetensors (nothing is unpickled on load) without the frozen
semantic encoder, whose weights ship in its own package; the JSON holds the
format tag, the ModelConfig and free-form metadata (training record, metrics).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from causalsr.atomic import atomic_path, atomic_write_text
from causalsr.models.causalsr import CausalSR
from causalsr.models.config import ModelConfig
from causalsr.stems import files_of, stem_of
from causalsr.yaml_config import apply_overrides, from_dict, to_dict

FORMAT = "causalsr-inference/1"


def _weights_state(model: CausalSR) -> dict[str, torch.Tensor]:
    """State dict without the frozen semantic encoder (its weights ship in its own package)."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith("semantic.")}


def save_pretrained(model: CausalSR, path: str | Path, meta: dict | None = None) -> tuple[Path, Path]:
    """Write `<path>.safetensors` (weights) and `<path>.json` (config + metadata), atomically."""
    path = stem_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights, config = files_of(path)
    with atomic_path(weights) as tmp:
        save_file(_weights_state(model), str(tmp))
    info = {"format": FORMAT, "arch": "causalsr", "scale": model.scale, "model_config": to_dict(model.cfg)}
    info.update(meta or {})
    atomic_write_text(config, json.dumps(info, indent=2, sort_keys=True))
    return weights, config


def load_pretrained(path: str | Path, map_location: str = "cpu") -> tuple[CausalSR, dict]:
    """Load a checkpoint written by `save_pretrained`; clear one-line errors otherwise.

    Only safetensors are read, so loading never unpickles anything.
    """
    weights, config = files_of(stem_of(path))
    for f in (weights, config):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: model file not found")
    try:
        info = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config}: not a causalsr model config ({e})") from None
    if info.get("format") != FORMAT or info.get("arch") != "causalsr":
        raise ValueError(f"{config}: not a causalsr checkpoint "
                         f"(format {info.get('format')!r}, arch {info.get('arch')!r})")
    cfg = from_dict(ModelConfig, info["model_config"])
    model = CausalSR(cfg)
    try:
        state = load_file(str(weights), device=map_location)
    except Exception as e:  # safetensors raises several types for corrupt files
        raise ValueError(f"{weights}: unreadable safetensors file ({str(e).splitlines()[0]})") from None
    expected = _weights_state(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        detail = (missing or unexpected or mismatched)[:3]
        raise ValueError(
            f"{weights}: weights do not match the architecture in {config.name} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mismatched, e.g. {detail})"
        )
    model.load_state_dict(state, strict=False)
    model.eval()
    return model, info


def with_model_overrides(model: CausalSR, info: dict, overrides: list[str]) -> CausalSR:
    """`model` rebuilt with ``key=value`` ModelConfig overrides and the same weights; updates ``info["model_config"]``.

    For inference-only options such as ``posterior_crop``, and for growing the
    posterior with ``posterior_lr_depth``: its new blocks start at zero, so the
    rebuilt model computes what ``model`` did until they are trained. Any other
    change of architecture raises ValueError.
    """
    if not overrides:
        return model
    cfg = from_dict(ModelConfig, apply_overrides(dict(info["model_config"]), overrides))
    rebuilt = CausalSR(cfg)
    missing, unexpected = rebuilt.load_state_dict(model.state_dict(), strict=False)
    # Keys of new blocks are "posterior.lr_blocks.<i>.*"; a block the model already had must be loaded.
    grown = range(model.cfg.posterior_lr_depth, cfg.posterior_lr_depth)
    missing = [k for k in missing if not any(k.startswith(f"posterior.lr_blocks.{i}.") for i in grown)]
    if missing or unexpected:
        raise ValueError(f"model overrides {overrides} change the architecture "
                         f"({len(missing)} missing, {len(unexpected)} unexpected weights, "
                         f"e.g. {(missing or unexpected)[:3]})")
    info["model_config"] = to_dict(cfg)
    return rebuilt.eval()
