"""Bundled inference weights shipped inside the package (`causalsr/weights/`).

Names "x2", "x3" and "x4" map to `causalsr/weights/causalsr_x{s}` with a
`.safetensors` file (weights), a `.json` file (config and metadata) and a
`.md` model card. Anything else is taken as a checkpoint path (with or
without its `.safetensors` / `.json` suffix).
"""
from __future__ import annotations

from pathlib import Path

from causalsr.stems import files_of, stem_of

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
BUNDLED: dict[str, int] = {"x2": 2, "x3": 3, "x4": 4}


def bundled_stem(name: str) -> Path:
    """The path stem of a bundled model ("x4" -> .../weights/causalsr_x4)."""
    if name not in BUNDLED:
        raise KeyError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
    return WEIGHTS_DIR / f"causalsr_x{BUNDLED[name]}"


def resolve(name_or_path: str | Path) -> Path:
    """Checkpoint stem for a bundled name or a path; FileNotFoundError (one line) if its files are absent."""
    text = str(name_or_path)
    if text in BUNDLED:
        stem = bundled_stem(text)
        missing = [f.name for f in files_of(stem) if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"bundled model {text!r} is not installed ({', '.join(missing)} missing from {WEIGHTS_DIR}); "
                f"pass a checkpoint with --model PATH")
        return stem
    path = Path(text).expanduser()
    stem = stem_of(path)
    missing = [str(f) for f in files_of(stem) if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"model file not found: {', '.join(missing)}")
    return stem


def model_card(name: str) -> str | None:
    """The model card (markdown) of a bundled model, or None if it is not installed."""
    card = bundled_stem(name).with_suffix(".md")
    return card.read_text(encoding="utf-8") if card.is_file() else None


__all__ = ["BUNDLED", "WEIGHTS_DIR", "bundled_stem", "resolve", "model_card"]
