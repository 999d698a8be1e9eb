"""Model files: `save_pretrained` (a training export), `save_folder` (the model-hub layout), `load_pretrained`.

Two layouts hold the same safetensors format (`file_format.FORMAT`, version in
the file's metadata):

- a stem, ``<stem>.safetensors`` + ``<stem>.json``: what training and
  `fit-posterior` write, every tensor included (training-only parts too, for
  warm starts);
- a folder, ``model.safetensors`` + ``config.json`` + ``README.md`` (the model
  card): the hub layout of the bundled models, inference tensors only, the
  frozen encoder stored fp16 to keep the package small.

Either file holds the frozen semantic encoder's weights (when it is an encoder
whose weights models carry, `SemanticEncoder.in_model_file`) and the model
config (`file_format.CONFIG_KEY`), so loading needs only torch and this package.
The JSON holds the format tag, the ModelConfig and free-form metadata (training
record, metrics). Format-1 files (no encoder, older tensor names) still load:
`file_format.upgrade_names` renames their tensors and the encoder comes from its
package. Only safetensors are read, so loading never unpickles anything.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from causalsr.atomic import atomic_path, atomic_write_text
from causalsr.models.causalsr import CausalSR
from causalsr.models.config import ModelConfig
from causalsr.models.file_format import (
    CONFIG_KEY,
    ENCODER_PREFIX,
    FORMAT,
    FORMAT_V1,
    TRAINING_ONLY,
    config_tensor,
    read_config_tensor,
    upgrade_names,
)
from causalsr.stems import HUB_FILES, files_of, model_files, stem_of
from causalsr.yaml_config import apply_overrides, from_dict, to_dict


def model_state(model: CausalSR, training: bool = True,
                encoder_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The tensors a model file stores: the state dict plus `CONFIG_KEY`.

    The frozen encoder is included when models carry its weights (cast to
    `encoder_dtype` if given); `training=False` leaves out the training-only parts.
    """
    stored = getattr(getattr(model, "semantic", None), "in_model_file", False)
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith(TRAINING_ONLY) and not training:
            continue
        if k.startswith(ENCODER_PREFIX):
            if not stored:
                continue
            if encoder_dtype is not None and v.is_floating_point():
                v = v.to(encoder_dtype)
        state[k] = v.detach().contiguous()
    state[CONFIG_KEY] = config_tensor(_header(model))
    return state


def _header(model: CausalSR) -> dict:
    return {"format": FORMAT, "arch": "causalsr", "scale": model.scale, "model_config": to_dict(model.cfg)}


def _write(model: CausalSR, weights: Path, config: Path, meta: dict | None, state: dict[str, torch.Tensor]) -> None:
    weights.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    info = _header(model)
    info.update({k: v for k, v in (meta or {}).items() if k not in info})
    atomic_write_text(config, json.dumps(info, indent=2, sort_keys=True))


def save_pretrained(model: CausalSR, path: str | Path, meta: dict | None = None) -> tuple[Path, Path]:
    """Write `<path>.safetensors` (every tensor, encoder in fp32) and `<path>.json` (config + metadata)."""
    weights, config = files_of(stem_of(path))
    _write(model, weights, config, meta, model_state(model))
    return weights, config


def save_folder(model: CausalSR, folder: str | Path, meta: dict | None = None, card: str | None = None,
                encoder_dtype: torch.dtype | None = torch.float16) -> tuple[Path, ...]:
    """Write the hub layout: `model.safetensors` (inference tensors), `config.json` and, given `card`, `README.md`."""
    folder = Path(folder)
    weights, config, readme = (folder / name for name in HUB_FILES)
    _write(model, weights, config, meta, model_state(model, training=False, encoder_dtype=encoder_dtype))
    if card is None:
        return weights, config
    atomic_write_text(readme, card)
    return weights, config, readme


def _read(weights: Path, map_location: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; ValueError (one line) if unreadable or of an unknown format."""
    try:
        with safe_open(str(weights), "pt") as f:
            fmt = (f.metadata() or {}).get("format", FORMAT_V1)  # format 1 wrote no metadata
        state = load_file(str(weights), device=map_location)
    except Exception as e:  # safetensors raises several types for corrupt files
        raise ValueError(f"{weights}: unreadable safetensors file ({str(e).splitlines()[0]})") from None
    if fmt not in (FORMAT, FORMAT_V1):
        raise ValueError(f"{weights}: model file format {fmt!r} is not one this causalsr reads "
                         f"({FORMAT_V1!r}, {FORMAT!r}); a newer causalsr may read it")
    return state


def _read_config(config: Path) -> dict | None:
    """The JSON beside the weights (None if absent); ValueError (one line) if it is not a causalsr config."""
    if not config.is_file():
        return None
    try:
        info = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config}: not a causalsr model config ({e})") from None
    if info.get("format") not in (FORMAT, FORMAT_V1) or info.get("arch") != "causalsr":
        raise ValueError(f"{config}: not a causalsr checkpoint "
                         f"(format {info.get('format')!r}, arch {info.get('arch')!r})")
    return info


def _info(info: dict | None, weights: Path, config: Path, state: dict[str, torch.Tensor]) -> dict:
    """The model's config and metadata: `info` (the JSON beside the weights), which must agree with the file's own
    config (popped from `state`); the file's own config alone when there is no JSON."""
    embedded = read_config_tensor(state.pop(CONFIG_KEY)) if CONFIG_KEY in state else None
    if info is None:
        if embedded is None:
            raise FileNotFoundError(f"{config}: model file not found")
        return embedded
    if embedded is not None and embedded["model_config"] != info["model_config"]:
        raise ValueError(f"{config.name}'s model_config differs from the one stored in {weights.name}; "
                         "write both again (scripts/bundle_model.py)")
    return info


def load_pretrained(path: str | Path, map_location: str = "cpu") -> tuple[CausalSR, dict]:
    """Load a model folder or stem (`save_folder`, `save_pretrained`, or format 1); one-line errors otherwise."""
    weights, config = model_files(path)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: model file not found")
    info = _read_config(config)  # a bad config is reported before the weights are read
    state = _read(weights, map_location)
    info = _info(info, weights, config, state)
    state = upgrade_names(state)
    has_encoder = any(k.startswith(ENCODER_PREFIX) for k in state)
    training = any(k.startswith(TRAINING_ONLY) for k in state)
    model = CausalSR(from_dict(ModelConfig, info["model_config"]), training_parts=training,
                     pretrained_encoder=not has_encoder)
    expected = {k: v for k, v in model.state_dict().items() if has_encoder or not k.startswith(ENCODER_PREFIX)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        detail = (missing or unexpected or mismatched)[:3]
        raise ValueError(
            f"{weights}: weights do not match the architecture in {config.name} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mismatched, e.g. {detail})"
        )
    model.load_state_dict(state, strict=False)  # fp16-stored tensors are copied into the fp32 model
    model.eval()
    return model, info


def with_model_overrides(model: CausalSR, info: dict, overrides: list[str]) -> CausalSR:
    """`model` rebuilt with ``key=value`` ModelConfig overrides and the same weights; updates ``info["model_config"]``.

    For inference-only options such as ``posterior_crop``, and for growing the
    posterior with ``posterior_lr_depth``, ``posterior_noise_stats`` or ``posterior_patch_noise``: its new
    parts start at zero, so the rebuilt model computes what ``model`` did until they are trained. Any other
    change of architecture raises ValueError.
    """
    if not overrides:
        return model
    cfg = from_dict(ModelConfig, apply_overrides(dict(info["model_config"]), overrides))
    rebuilt = CausalSR(cfg, training_parts=hasattr(model, "f_head"), pretrained_encoder=False)
    missing, unexpected = rebuilt.load_state_dict(model.state_dict(), strict=False)
    # New parts start at zero: blocks "posterior.lr_blocks.<i>.*" and the noise-statistics and patch-noise MLPs.
    # A part the model already had must be loaded.
    grown = [f"posterior.lr_blocks.{i}." for i in range(model.cfg.posterior_lr_depth, cfg.posterior_lr_depth)]
    if cfg.posterior_noise_stats and not model.cfg.posterior_noise_stats:
        grown.append("posterior.noise_mlp.")
    if cfg.posterior_patch_noise and not model.cfg.posterior_patch_noise:
        grown.append("posterior.patch_noise_mlp.")
    missing = [k for k in missing if not k.startswith(tuple(grown))]
    if missing or unexpected:
        raise ValueError(f"model overrides {overrides} change the architecture "
                         f"({len(missing)} missing, {len(unexpected)} unexpected weights, "
                         f"e.g. {(missing or unexpected)[:3]})")
    info["model_config"] = to_dict(cfg)
    return rebuilt.eval()
