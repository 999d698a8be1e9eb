"""Training checkpoints: atomic, rotated, resumable; plus the inference export.

A checkpoint `<out_dir>/checkpoints/step_00001000` is two files:

- `.safetensors`: the model's state dict without the frozen semantic encoder
  (a run takes its weights from the encoder's package), so weights never need unpickling;
- `.state.pt`: everything else needed to continue exactly (optimiser moments and
  Eq. 26 norms, LR schedulers, the Objective's Eq. 24 state, RNG states, step and
  data position), holding only tensors and primitive containers so that it loads
  with `torch.load(weights_only=True)`. It records the weights file's SHA-256.

Both are written atomically, then the `latest` pointer, then old checkpoints
beyond `keep` are removed. `find_latest_valid` skips a checkpoint whose files are
missing, truncated or do not match (a crash between the two writes, a full disk).
"""
from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from causalsr.atomic import atomic_path, atomic_write_text
from causalsr.stems import files_of, stem_of

if TYPE_CHECKING:
    from causalsr.models.causalsr import CausalSR

FROZEN_PREFIXES = ("semantic.",)  # CausalSR's frozen encoder E, excluded as in save_pretrained
CKPT_DIR = "checkpoints"
LATEST = "latest"
_NAME = re.compile(r"^step_(\d{8,})$")
SUFFIXES = (".safetensors", ".state.pt")  # weights, training state


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (one-line reason naming the file)."""


def weights_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model state that a checkpoint stores (cloned to CPU, frozen encoder excluded)."""
    return {k: v.detach().to("cpu", copy=True).contiguous()
            for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}


def rng_state() -> dict:
    """RNG states of torch (CPU and CUDA), numpy's global generator and `random`, as tensors/lists."""
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    name, keys, pos, has_gauss, cached = legacy
    version, py_state, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(py_state), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(prefix: Path) -> tuple[Path, ...]:
    return files_of(prefix, SUFFIXES)


def _step_of(path: Path) -> int | None:
    m = _NAME.match(path.name.split(".")[0])
    return int(m.group(1)) if m else None


def save_checkpoint(out_dir: str | Path, step: int, model: torch.nn.Module, state: dict, keep: int = 3) -> Path:
    """Write checkpoint `step` under `<out_dir>/checkpoints`; returns its prefix path.

    `state` must hold only tensors and primitive containers (it is read back
    with weights_only=True). Keeps the newest `keep` checkpoints (<= 0: all).
    """
    ckpt_dir = Path(out_dir) / CKPT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    prefix = ckpt_dir / f"step_{step:08d}"
    weights, train_state = _files(prefix)
    with atomic_path(weights) as tmp:
        save_file(weights_state(model), str(tmp), metadata={"step": str(step)})
    with atomic_path(train_state) as tmp:
        torch.save({**state, "step": step, "weights_sha256": _sha256(weights)}, tmp)
    atomic_write_text(ckpt_dir / LATEST, prefix.name + "\n")
    if keep > 0:
        steps = sorted({s for s in map(_step_of, ckpt_dir.glob("step_*")) if s is not None}, reverse=True)
        for old in steps[keep:]:
            for f in _files(ckpt_dir / f"step_{old:08d}"):
                f.unlink(missing_ok=True)
    return prefix


def read_checkpoint(prefix: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Load and verify (weights, training state) of one checkpoint; CheckpointError if unusable."""
    weights, train_state = _files(Path(prefix))
    for f in (weights, train_state):
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (incomplete checkpoint)")
    try:
        state = torch.load(train_state, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle refusing a non-tensor object, ...
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{train_state}: unreadable ({why})") from None
    if not isinstance(state, dict) or "weights_sha256" not in state:
        raise CheckpointError(f"{train_state}: not a causalsr training state")
    if _sha256(weights) != state["weights_sha256"]:
        raise CheckpointError(f"{weights}: contents do not match its training state (corrupt or partial)")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({e})") from None
    return tensors, state


def find_latest_valid(out_dir: str | Path, verbose: bool = True) -> Path | None:
    """Prefix of the newest usable checkpoint in `<out_dir>/checkpoints` (or `out_dir` itself), else None.

    Tries the `latest` pointer first, then every checkpoint newest first,
    skipping (and, with `verbose`, naming) corrupt or partial ones.
    """
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / CKPT_DIR if (out_dir / CKPT_DIR).is_dir() else out_dir
    if not ckpt_dir.is_dir():
        return None
    steps = sorted({s for s in map(_step_of, ckpt_dir.glob("step_*")) if s is not None}, reverse=True)
    candidates = [ckpt_dir / f"step_{s:08d}" for s in steps]
    pointer = ckpt_dir / LATEST
    if pointer.is_file():
        named = ckpt_dir / pointer.read_text(encoding="utf-8").strip()
        if named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
    for prefix in candidates:
        try:
            read_checkpoint(prefix)
            return prefix
        except CheckpointError as e:
            if verbose:
                print(f"causalsr train: skipping checkpoint: {e}", flush=True)
    return None


def resolve_resume(resume: str, out_dir: str | Path) -> Path | None:
    """`--resume auto` -> newest valid checkpoint of `out_dir` (None when there is none);
    `--resume PATH` -> that checkpoint (a prefix, either of its files, or a run/checkpoints folder)."""
    if resume == "auto":
        return find_latest_valid(out_dir)
    path = Path(resume)
    if path.is_dir():
        found = find_latest_valid(path)
        if found is None:
            raise CheckpointError(f"{path}: no usable checkpoint in this folder")
        return found
    path = stem_of(path, SUFFIXES)
    read_checkpoint(path)
    return path


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load checkpoint weights into `model`; every stored key (frozen encoder aside) must match.

    Tensor names of older checkpoints are upgraded first (`file_format.upgrade_names`)."""
    from causalsr.models.file_format import upgrade_names

    tensors = upgrade_names(tensors)
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{source}: weights do not match this model config ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} mismatched, e.g. {(missing or unexpected or mismatched)[:3]})")
    model.load_state_dict(tensors, strict=False)


def export_inference(model: torch.nn.Module, path: str | Path, meta: dict) -> tuple[Path, Path]:
    """Inference export (`<path>.safetensors` + `<path>.json`) via the model's `save_pretrained`."""
    from causalsr.models.model_file import save_pretrained

    return save_pretrained(cast("CausalSR", model), path, meta)
