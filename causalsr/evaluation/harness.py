"""The benchmark protocol: HR -> LR -> SR -> metrics, averaged per dataset and scale.

Protocol (docs/benchmarks.md, DESIGN "Evaluation conventions"):

1. Crop HR to a multiple of the scale from the top-left.
2. LR = MATLAB-exact bicubic downscale (uint8), after the degradation preset's
   blur and before its noise / JPEG (`degradations.degrade_numpy_uint8`); the
   noise seed is fixed per image (from the HR's content hash), so runs repeat.
3. SR by the method, uint8.
4. PSNR / SSIM on Y with a border of `scale` pixels removed; greyscale sources
   follow `grey_convention`. Perceptual metrics (LPIPS v0.1 AlexNet, ...) on
   full-size RGB, no crop. Per-image values are averaged.

LR images are cached as PNG under `<cache>/lr/`, keyed by a hash of the HR
pixels, scale, degradation and seed. A bad image is recorded and skipped.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, preset
from causalsr.data.imageio import ImageReadError, read_image, write_image
from causalsr.data.imresize import crop_to_multiple
from causalsr.evaluation.methods import Method, check_scale
from causalsr.metrics.perceptual import PERCEPTUAL_METRICS, cache_dir, perceptual
from causalsr.metrics.psnr_ssim import psnr, ssim

METRICS = ("psnr", "ssim", *PERCEPTUAL_METRICS)


@dataclass
class DatasetResult:
    """Averages and per-image values of one (method, dataset, scale, degradation) run."""

    method: str
    dataset: str
    scale: int
    degradation: str
    metrics: tuple[str, ...]
    per_image: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        return float(np.mean([r[metric] for r in self.per_image])) if self.per_image else float("nan")

    def to_dict(self) -> dict:
        out = {"method": self.method, "dataset": self.dataset, "scale": self.scale,
               "degradation": self.degradation, "n_images": len(self.per_image)}
        out.update({m: self.mean(m) for m in self.metrics})
        out["per_image"] = self.per_image
        return out


def load_hr_uint8(path: Path) -> tuple[np.ndarray, bool]:
    """A benchmark HR image as 8-bit RGB (16-bit rounded down to 8 bits), and whether it is greyscale."""
    img = read_image(path)
    rgb = img.rgb
    if rgb.dtype == np.uint16:  # benchmarks are 8-bit; a 16-bit HR is measured at 8 bits
        rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return rgb, img.grey


def image_seed(hr: np.ndarray) -> int:
    """Noise seed of an HR image: from its pixels, so it does not depend on file names or order."""
    return int.from_bytes(hashlib.sha256(hr.tobytes()).digest()[:4], "little")


def make_lr_cached(hr: np.ndarray, scale: int, degradation: str, cache: Path | None = None) -> np.ndarray:
    """LR of an HR uint8 image under `degradation` (a preset name); cached by content as PNG."""
    seed = image_seed(hr)
    key = hashlib.sha256(hr.tobytes() + repr((hr.shape, scale, degradation, seed)).encode()).hexdigest()[:32]
    path = (cache or cache_dir() / "lr") / f"{key}.png"
    if path.is_file():
        try:
            return read_image(path).rgb
        except ImageReadError:
            pass  # a damaged cache entry is simply rebuilt
    lr = degrade_numpy_uint8(hr, preset(degradation, scale, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, lr)
    return lr


def evaluate_image(method: Method, hr: np.ndarray, scale: int, degradation: str, metrics: tuple[str, ...],
                   grey: bool = False, grey_convention: str = "basicsr",
                   lr_cache: Path | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Run the protocol on one HR uint8 image; returns the SR image and its metric values."""
    hr = crop_to_multiple(hr, scale)
    lr = make_lr_cached(hr, scale, degradation, lr_cache)
    sr = method.upscale(lr, scale)
    if sr.dtype != np.uint8 or sr.shape != hr.shape:
        raise ValueError(f"method {method.name!r} returned {sr.dtype} {sr.shape}, expected uint8 {hr.shape}")
    values = {}
    for m in metrics:
        if m == "psnr":
            values[m] = psnr(hr, sr, crop=scale, grey=grey, grey_convention=grey_convention)
        elif m == "ssim":
            values[m] = ssim(hr, sr, crop=scale, grey=grey, grey_convention=grey_convention)
        else:
            values[m] = perceptual(m, hr, sr)
    return sr, values


def evaluate(method: Method, datasets: list[str], scales: list[int], degradation: str = "bicubic",
             metrics: tuple[str, ...] = ("psnr", "ssim"), grey_convention: str = "basicsr",
             save_images: Path | None = None, lr_cache: Path | None = None,
             progress: bool | None = None) -> list[DatasetResult]:
    """Benchmark `method` on every dataset (name or folder) at every scale.

    Unreadable or failing images are listed in each result's `failures` and skipped.
    `progress=None` shows a tqdm bar on stderr only when it is a terminal.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    for s in scales:
        check_scale(method, s)
    preset(degradation, scales[0])  # fail on an unknown preset before any work
    resolved = [resolve_dataset(d) for d in datasets]
    results = []
    for name, files in resolved:
        for scale in scales:
            res = DatasetResult(method.name, name, scale, degradation, tuple(metrics))
            for path in tqdm(files, desc=f"{method.name} {name} x{scale}", unit="img", disable=None if progress is None else not progress):
                try:
                    hr, grey = load_hr_uint8(path)
                    sr, values = evaluate_image(method, hr, scale, degradation, tuple(metrics), grey, grey_convention, lr_cache)
                except ValueError as e:  # ImageReadError included
                    msg = str(e)
                    res.failures.append(msg if str(path) in msg else f"{path}: {msg}")
                    continue
                res.per_image.append({"name": path.stem, **values})
                if save_images is not None:
                    out = Path(save_images) / method.name / name / f"x{scale}" / f"{path.stem}.png"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    write_image(out, sr)
            results.append(res)
    return results


def markdown_table(results: list[DatasetResult]) -> str:
    """One row per (method, dataset, scale, degradation): image count and metric means."""
    if not results:
        return ""
    metrics = results[0].metrics
    fmt = {"psnr": "{:.2f}", "ssim": "{:.4f}"}
    lines = ["| method | dataset | scale | degradation | images | " + " | ".join(metrics) + " |",
             "|---|---|---|---|---|" + "---|" * len(metrics)]
    for r in results:
        cells = [fmt.get(m, "{:.4f}").format(r.mean(m)) for m in metrics]
        lines.append(f"| {r.method} | {r.dataset} | x{r.scale} | {r.degradation} | {len(r.per_image)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _git_commit() -> str:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never touch the index others may be using
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, env=env).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, env=env).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, torch {torch.__version__}"


def run_meta(command: str, grey_convention: str | None = None) -> dict:
    """The "meta" block of a results JSON: when, where, which code, how (the grey convention where metrics use one)."""
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": _machine(), "commit": _git_commit(), "command": command}
    if grey_convention is not None:
        meta["grey_convention"] = grey_convention
    return meta
