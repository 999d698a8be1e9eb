"""Bundled inference weights shipped inside the package (`causalsr/weights/`).

Names "x2", "x3" and "x4" map to the folders `causalsr/weights/x{s}/`, each in
the model-hub layout: `model.safetensors` (weights, frozen encoder included),
`config.json` (config and metadata) and `README.md` (the model card, with a
YAML header). Anything else is taken as a model path: a folder of that layout,
a training export's stem (with or without its `.safetensors` / `.json`
suffix), or an older-format file (see `models/file_format.py`).
"""
from __future__ import annotations

from pathlib import Path

from causalsr.stems import HUB_FILES, model_files, model_root

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
BUNDLED: dict[str, int] = {"x2": 2, "x3": 3, "x4": 4}


def bundled_dir(name: str) -> Path:
    """The folder of a bundled model ("x4" -> .../weights/x4)."""
    if name not in BUNDLED:
        raise KeyError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
    return WEIGHTS_DIR / name


def resolve(name_or_path: str | Path) -> Path:
    """Model folder or stem (`stems.model_root`) for a bundled name or a path; FileNotFoundError (one line)
    if its weights are absent.

    A bundled model needs its weights and config; a path needs its weights (a
    current-format file holds its own config; the loader names a missing one).
    """
    text = str(name_or_path)
    if text in BUNDLED:
        folder = bundled_dir(text)
        missing = [name for name in HUB_FILES[:2] if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"bundled model {text!r} is not installed ({', '.join(missing)} missing from {folder}); "
                f"pass a model with --model PATH")
        return folder
    root = model_root(Path(text).expanduser())
    weights, _ = model_files(root)
    if not weights.is_file():
        raise FileNotFoundError(f"model file not found: {weights}")
    return root


def model_card(name: str) -> str | None:
    """The model card (README.md, YAML header and markdown) of a bundled model, or None if it is not installed."""
    card = bundled_dir(name) / HUB_FILES[2]
    return card.read_text(encoding="utf-8") if card.is_file() else None


__all__ = ["BUNDLED", "WEIGHTS_DIR", "bundled_dir", "resolve", "model_card"]
