"""Datasets: benchmark name resolution, HR folders degraded on the fly, paired LR/HR folders.

Samples are dicts: ``hr`` (3,P,P) and ``lr`` (3,P/s,P/s) float in [0, 1],
``factors`` float32[3] physical named factors (NaN when unknown), ``params``
(the `DegradationParams` as a dict, or None) and ``name`` (file stem).
Randomness is a function of (seed, epoch, index) only, so any worker layout
gives the same samples; call `set_epoch` before iterating each epoch.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from causalsr.data.degradations import DegradationSampler, SamplerConfig, degrade
from causalsr.data.imageio import IMAGE_EXTENSIONS, is_image_path, read_image

BENCHMARKS = {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "b100": "BSD100",
              "urban100": "Urban100", "manga109": "Manga109"}
"""Lower-case name or alias -> folder name under the benchmark root."""
TRAIN_SETS = {"t91": "T91", "bsd200": "BSD200"}
"""Lower-case name -> folder name under the training root (images directly in it)."""
EXPECTED_IMAGES = {"Set5": 5, "Set14": 14, "BSD100": 100, "Urban100": 100, "Manga109": 109, "T91": 91, "BSD200": 200}
"""Image count of each complete set (a partial copy is still usable)."""
DATA_ENV = "CAUSALSR_DATA"
"""Environment variable naming the data folder (layout in docs/data.md)."""
EXTRAS = {"iqa-calibration": "iqa-calibration"}
"""Other folders of the data folder: the metric-calibration pairs (used by the tests only)."""
_REPO_ROOT = Path(__file__).resolve().parents[2]

_data_root_override: Path | None = None


def set_data_root(path: str | os.PathLike | None) -> None:
    """Use `path` as the data folder from now on in this process (the CLI's --data-root); None undoes it."""
    global _data_root_override
    _data_root_override = None if path is None else Path(path).expanduser()


def default_data_dirs() -> list[Path]:
    """The default data folder: ../shared/data beside the working directory, else beside the repository."""
    dirs = [Path.cwd().parent / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"]
    return dirs[:1] if dirs[0] == dirs[1] else dirs


def _explicit_root() -> tuple[Path, str] | None:
    """The data folder set by --data-root or $CAUSALSR_DATA, with where it came from."""
    if _data_root_override is not None:
        return _data_root_override, f"--data-root {_data_root_override}"
    env = os.environ.get(DATA_ENV)
    return (Path(env).expanduser(), f"{DATA_ENV}={env}") if env else None


def data_root() -> Path | None:
    """The data folder, or None when there is none.

    --data-root (`set_data_root`), else $CAUSALSR_DATA, else the first existing
    of `default_data_dirs()`. A folder set explicitly is never replaced by the
    default: when it does not exist there is no data.
    """
    explicit = _explicit_root()
    if explicit is not None:
        return explicit[0] if explicit[0].is_dir() else None
    return next((d for d in default_data_dirs() if d.is_dir()), None)


def data_root_source() -> str:
    """Where the data folder is looked for, in words (for messages)."""
    explicit = _explicit_root()
    if explicit is not None:
        return explicit[1]
    return f"default {' or '.join(str(d) for d in default_data_dirs())}; {DATA_ENV} not set"


def _missing(what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} not found in {data_root_source()}; "
                             f"set {DATA_ENV} (or --data-root) to a data folder laid out as in docs/data.md")


def benchmark_root() -> Path:
    """Folder holding <Name>/HR/: the data folder's benchmarks/ (or the data folder itself, when it
    is a benchmarks folder). FileNotFoundError when there is none."""
    root = data_root()
    if root is not None:
        for c in (root / "benchmarks", root):
            if c.is_dir() and any((c / n / "HR").is_dir() for n in set(BENCHMARKS.values())):
                return c
    raise _missing("benchmark data")


def find_dataset(name: str) -> Path | None:
    """The folder of a named set in the data folder, or None when it is absent.

    Benchmarks: benchmarks/<Name>/HR (or <Name>/HR when the data folder is a
    benchmarks folder); training sets: train/<Name>; extras: <name>.
    """
    key = name.lower()
    if key in BENCHMARKS:
        folder = BENCHMARKS[key]
        relative = [Path("benchmarks", folder, "HR"), Path(folder, "HR")]
    elif key in TRAIN_SETS:
        relative = [Path("train", TRAIN_SETS[key])]
    elif key in EXTRAS:
        relative = [Path(EXTRAS[key])]
    else:
        raise ValueError(f"unknown dataset {name!r}: not one of {', '.join([*EXPECTED_IMAGES, *EXTRAS])}")
    root = data_root()
    if root is None:
        return None
    return next((root / r for r in relative if (root / r).is_dir()), None)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in `folder` (by extension, hidden files skipped), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_path(p))


def resolve_dataset(name_or_path: str | os.PathLike) -> tuple[str, list[Path]]:
    """(display name, sorted HR image paths) for a benchmark name or a folder of images.

    Names (case-insensitive): the benchmarks Set5, Set14, BSD100 (alias B100), Urban100,
    Manga109 and the training sets T91, BSD200, looked up in `data_root()`.
    """
    path = Path(name_or_path)
    key = str(name_or_path).lower()
    if path.is_dir():
        name = path.parent.name if path.name.upper() == "HR" else path.name
        files = list_images(path)
    elif key in BENCHMARKS or key in TRAIN_SETS:
        name = BENCHMARKS.get(key) or TRAIN_SETS[key]
        kind = "benchmark" if key in BENCHMARKS else "training set"
        folder = find_dataset(name)
        if folder is None:
            raise _missing(f"{kind} {name}")
        files = list_images(folder)
        path = folder
    else:
        raise ValueError(f"unknown dataset {str(name_or_path)!r}: not a folder and not one of "
                         f"Set5, Set14, BSD100 (B100), Urban100, Manga109, T91, BSD200")
    if not files:
        raise ValueError(f"{path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return name, files


def _augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Same random 90-degree rotation and horizontal flip for every array (HxWxC)."""
    k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
    out = []
    for a in arrays:
        a = np.rot90(a, k)
        out.append(np.ascontiguousarray(a[:, ::-1] if flip else a))
    return out


def _to_chw(img: np.ndarray) -> torch.Tensor:
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    return torch.from_numpy(img.astype(np.float32) / peak).permute(2, 0, 1).contiguous()


class HRPatchDataset(Dataset):
    """Random HR patches, augmented, degraded on the fly with sampled params.

    `roots`: folders of HR images (or benchmark names). Images are decoded
    once and kept in memory. An image smaller than `patch_size` is skipped
    with a warning. Length is ``n_images * repeat``.
    """

    def __init__(self, roots: str | os.PathLike | Sequence[str | os.PathLike], scale: int, patch_size: int,
                 sampler_cfg: SamplerConfig | None = None, seed: int = 0, repeat: int = 1):
        if patch_size % scale:
            raise ValueError(f"patch_size {patch_size} must be a multiple of the scale {scale}")
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        self.scale, self.patch_size, self.seed, self.repeat = scale, patch_size, seed, repeat
        self.sampler = DegradationSampler(sampler_cfg)
        self.epoch = 0
        self.images: list[np.ndarray] = []
        self.names: list[str] = []
        skipped = []
        for root in roots:
            for path in resolve_dataset(root)[1]:
                rgb = read_image(path).rgb
                if min(rgb.shape[:2]) < patch_size:
                    skipped.append(path.name)
                    continue
                self.images.append(rgb)
                self.names.append(path.stem)
        if skipped:
            warnings.warn(f"{len(skipped)} image(s) smaller than patch_size {patch_size} skipped (e.g. {skipped[0]})",
                          stacklevel=2)
        if not self.images:
            raise ValueError(f"no training image is at least {patch_size}x{patch_size} in {', '.join(map(str, roots))}")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; samples are a function of (seed, epoch, index)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        i = index % len(self.images)
        img, p = self.images[i], self.patch_size
        y, x = int(rng.integers(img.shape[0] - p + 1)), int(rng.integers(img.shape[1] - p + 1))
        (patch,) = _augment([img[y:y + p, x:x + p]], rng)
        params = self.sampler.sample(rng, self.scale)
        hr = _to_chw(patch)
        return {"hr": hr, "lr": degrade(hr, params), "factors": torch.from_numpy(params.factors()),
                "params": params.to_dict(), "name": self.names[i]}


class PairedDataset(Dataset):
    """Paired LR/HR folders matched by file stem (an LR stem may end in "x{s}" or "_x{s}").

    HR must be LR size times `scale` (a surplus under `scale` pixels is cropped
    from the bottom/right). With `patch_size` (HR pixels) returns aligned random
    augmented patches; without, whole images. Factors are unknown (NaN).
    """

    def __init__(self, lr_dir: str | os.PathLike, hr_dir: str | os.PathLike, scale: int,
                 patch_size: int | None = None, seed: int = 0):
        if patch_size is not None and patch_size % scale:
            raise ValueError(f"patch_size {patch_size} must be a multiple of the scale {scale}")
        self.scale, self.patch_size, self.seed, self.epoch = scale, patch_size, seed, 0
        suffix = re.compile(rf"_?x{scale}$", re.IGNORECASE)
        hr_by_stem = {p.stem: p for p in list_images(hr_dir)}
        self.pairs: list[tuple[Path, Path]] = []
        unmatched = []
        for lr in list_images(lr_dir):
            hr = hr_by_stem.get(lr.stem) or hr_by_stem.get(suffix.sub("", lr.stem))
            if hr is None:
                unmatched.append(lr.name)
            else:
                self.pairs.append((lr, hr))
        if unmatched:
            raise ValueError(f"{lr_dir}: {len(unmatched)} LR image(s) without an HR match in {hr_dir} "
                             f"(e.g. {unmatched[0]})")
        if not self.pairs:
            raise ValueError(f"{lr_dir}: no LR images found")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        lr_path, hr_path = self.pairs[index]
        lr, hr = read_image(lr_path).rgb, read_image(hr_path).rgb
        s = self.scale
        h, w = lr.shape[0] * s, lr.shape[1] * s
        if not (h <= hr.shape[0] < h + s and w <= hr.shape[1] < w + s):
            raise ValueError(f"{hr_path}: size {hr.shape[1]}x{hr.shape[0]} does not match {lr_path.name} "
                             f"{lr.shape[1]}x{lr.shape[0]} at scale {s}")
        hr = hr[:h, :w]
        if self.patch_size is not None:
            p = self.patch_size // s
            if min(lr.shape[:2]) < p:
                raise ValueError(f"{lr_path}: {lr.shape[1]}x{lr.shape[0]} is smaller than the LR patch {p}x{p}")
            rng = np.random.default_rng([self.seed, self.epoch, index])
            y, x = int(rng.integers(lr.shape[0] - p + 1)), int(rng.integers(lr.shape[1] - p + 1))
            lr, hr = _augment([lr[y:y + p, x:x + p], hr[y * s:(y + p) * s, x * s:(x + p) * s]], rng)
        return {"hr": _to_chw(hr), "lr": _to_chw(lr), "factors": torch.full((3,), float("nan")),
                "params": None, "name": hr_path.stem}


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensor fields; keep the others (params, name) as lists."""
    return {k: torch.stack([b[k] for b in batch]) if isinstance(batch[0][k], torch.Tensor) else [b[k] for b in batch]
            for k in batch[0]}
