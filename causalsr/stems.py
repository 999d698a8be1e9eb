"""File stems: files that come as a set sharing one stem, and output names made from an input's stem.

A model is a folder in the model-hub layout (`model.safetensors`, `config.json`,
`README.md`) or `<stem>.safetensors` + `<stem>.json` (`MODEL_SUFFIXES`; a
training export); `model_files` finds either from the folder, the stem or one
of its files. A training checkpoint is `<stem>.safetensors` + `<stem>.state.pt`.
Every command and API that takes such a path accepts the stem or either file,
through `stem_of`.
Outputs named after an input (`upscale`, `analyze --explain`, `eval
--save-images`) are `output_name`'s.
"""
from __future__ import annotations

import os
from pathlib import Path

MODEL_SUFFIXES = (".safetensors", ".json")
HUB_FILES = ("model.safetensors", "config.json", "README.md")  # a model folder: weights, config, model card


def stem_of(path: str | os.PathLike, suffixes: tuple[str, ...] = MODEL_SUFFIXES) -> Path:
    """`path` without the first of `suffixes` it ends with (a file of the set -> its stem); else `path` as is."""
    path = Path(path)
    for suffix in suffixes:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def files_of(stem: str | os.PathLike, suffixes: tuple[str, ...] = MODEL_SUFFIXES) -> tuple[Path, ...]:
    """The set's files: `stem` + each suffix, in the order of `suffixes`."""
    stem = Path(stem)
    return tuple(stem.with_name(stem.name + suffix) for suffix in suffixes)


def model_root(path: str | os.PathLike) -> Path:
    """A model's canonical path: its hub-layout folder (given the folder or one of its files), else its stem."""
    path = Path(path)
    if path.name in HUB_FILES[:2] and (path.parent / HUB_FILES[0]).is_file():
        return path.parent
    return path if path.is_dir() else stem_of(path)


def model_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, config) of a model: a hub-layout folder, one of its files, or a stem / stem file."""
    root = model_root(path)
    if root.is_dir():
        return root / HUB_FILES[0], root / HUB_FILES[1]
    weights, config = files_of(root)
    return weights, config


def output_name(src: str | os.PathLike, suffix: str = "", ext: str = "png") -> str:
    """The file name of the output made from input `src`: its stem, then `suffix`, then `.ext` (a.jpg -> a_x4.png)."""
    return f"{Path(src).stem}{suffix}.{ext}"
