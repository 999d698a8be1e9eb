"""The benchmark protocol: HR -> LR -> SR -> metrics, averaged per dataset and scale.

Protocol (docs/benchmarks.md, DESIGN "Evaluation conventions"):

1. Crop HR to a multiple of the scale from the top-left.
2. LR = MATLAB-exact bicubic downscale (uint8), after the degradation's blur
   and before its noise / JPEG (`degradations.degrade_numpy_uint8`); the
   noise seed is fixed per image (from the HR's content hash), so runs repeat.
   A degradation is a preset ("blur+noise+jpeg") or a parameterised spec
   ("gblur:1.5+noise:25+jpeg:50"), see `degradations.parse_degradation`.
3. SR by the method, uint8. Our models restore blind (Z = posterior mean of
   q(Z | Y)) unless told otherwise: ``condition="oracle"`` replaces Z's named
   dims with the degradation's true factors (normalised), and ``do`` applies
   do(factor = value) through the model's do-operator on top.
4. PSNR / SSIM on Y with a border of `scale` pixels removed; greyscale sources
   follow `grey_convention`. Perceptual metrics (LPIPS v0.1 AlexNet, ...) on
   full-size RGB, no crop. Per-image values are averaged.

LR images are cached as PNG under `<cache>/lr/`, keyed by a hash of the HR
pixels, scale, canonical degradation name and seed. A bad image is recorded and skipped.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from tqdm import tqdm

from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import canonical_degradation, degrade_numpy_uint8, exact_factors, parse_degradation
from causalsr.data.imageio import ImageReadError, read_image, to_uint8, write_image
from causalsr.data.imresize import crop_to_multiple
from causalsr.evaluation.methods import CausalSRMethod, Method, check_scale
from causalsr.factors import FACTOR_NAMES, N_NAMED, normalise
from causalsr.metrics.perceptual import PERCEPTUAL_METRICS, cache_dir, perceptual
from causalsr.metrics.psnr_ssim import psnr, ssim
from causalsr.stems import output_name

METRICS = ("psnr", "ssim", *PERCEPTUAL_METRICS)
CONDITIONS = ("blind", "oracle")
"""How our models are conditioned: Z from the posterior alone, or told the true named factors."""


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
    condition: str = "blind"
    do: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The method with its conditioning when not the default: "causalsr [oracle, do(noise=0)]"."""
        tags = (["oracle"] if self.condition != "blind" else []) + \
            ([f"do({', '.join(f'{k}={v:g}' for k, v in self.do.items())})"] if self.do else [])
        return f"{self.method} [{', '.join(tags)}]" if tags else self.method

    def mean(self, metric: str) -> float:
        return float(np.mean([r[metric] for r in self.per_image])) if self.per_image else float("nan")

    def to_dict(self) -> dict:
        params = parse_degradation(self.degradation, self.scale)
        true = exact_factors(params)
        described = {k: v for k, v in params.to_dict().items() if k not in ("scale", "seed")}  # the seed is per image
        out = {"method": self.method, "dataset": self.dataset, "scale": self.scale,
               "degradation": self.degradation, "degradation_params": described,
               "true_factors": None if true is None else dict(zip(FACTOR_NAMES, map(float, true))),
               "condition": self.condition, "do": dict(self.do), "n_images": len(self.per_image)}
        out.update({m: self.mean(m) for m in self.metrics})
        out["per_image"] = self.per_image
        return out


def load_hr_uint8(path: Path) -> tuple[np.ndarray, bool]:
    """A benchmark HR image as 8-bit RGB (16-bit rounded down to 8 bits), and whether it is greyscale."""
    img = read_image(path)
    rgb = img.rgb
    if rgb.dtype == np.uint16:  # benchmarks are 8-bit; a 16-bit HR is measured at 8 bits
        rgb = to_uint8(rgb)
    return rgb, img.grey


def image_seed(hr: np.ndarray) -> int:
    """Noise seed of an HR image: from its pixels, so it does not depend on file names or order."""
    return int.from_bytes(hashlib.sha256(hr.tobytes()).digest()[:4], "little")


def make_lr_cached(hr: np.ndarray, scale: int, degradation: str, cache: Path | None = None) -> np.ndarray:
    """LR of an HR uint8 image under `degradation` (a preset or spec); cached by content as PNG."""
    seed = image_seed(hr)
    name = canonical_degradation(degradation)
    key = hashlib.sha256(hr.tobytes() + repr((hr.shape, scale, name, seed)).encode()).hexdigest()[:32]
    path = (cache or cache_dir() / "lr") / f"{key}.png"
    if path.is_file():
        try:
            return read_image(path).rgb
        except ImageReadError:
            pass  # a damaged cache entry is simply rebuilt
    lr = degrade_numpy_uint8(hr, parse_degradation(degradation, scale, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, lr)
    return lr


def told_factors(degradation: str, scale: int) -> dict[int, float]:
    """{factor index: normalised true value} of a degradation, for ``condition="oracle"``.

    One-line ValueError naming --condition when its factors are not known exactly.
    """
    true = exact_factors(parse_degradation(degradation, scale))
    if true is None:
        raise ValueError(f"--condition oracle: the true factors of degradation {degradation!r} are unknown (its "
                         f"blur kernel is truncated or anisotropic, e.g. the paper's 3x3 'blur' preset); "
                         f"use gblur:S for a Gaussian blur of known sigma")
    values = normalise(torch.from_numpy(true).double())
    return {i: float(values[i]) for i in range(N_NAMED)}


def evaluate_image(method: Method, hr: np.ndarray, scale: int, degradation: str, metrics: tuple[str, ...],
                   grey: bool = False, grey_convention: str = "basicsr",
                   lr_cache: Path | None = None, do: dict[str, float] | None = None,
                   told: dict[int, float] | None = None,
                   metrics_device: str = "cpu") -> tuple[np.ndarray, dict[str, float]]:
    """Run the protocol on one HR uint8 image; returns the SR image and its metric values.

    `do` ({factor: physical value}) and `told` ({factor index: normalised value},
    see `told_factors`) go to a conditionable method (`CausalSRMethod`).
    Perceptual metrics run on `metrics_device`.
    """
    hr = crop_to_multiple(hr, scale)
    lr = make_lr_cached(hr, scale, degradation, lr_cache)
    sr = (cast(CausalSRMethod, method).upscale(lr, scale, do=do, told=told) if (do or told)
          else method.upscale(lr, scale))
    if sr.dtype != np.uint8 or sr.shape != hr.shape:
        raise ValueError(f"method {method.name!r} returned {sr.dtype} {sr.shape}, expected uint8 {hr.shape}")
    values = {}
    for m in metrics:
        if m == "psnr":
            values[m] = psnr(hr, sr, crop=scale, grey=grey, grey_convention=grey_convention)
        elif m == "ssim":
            values[m] = ssim(hr, sr, crop=scale, grey=grey, grey_convention=grey_convention)
        else:
            values[m] = perceptual(m, hr, sr, metrics_device)
    return sr, values


def check_degradations(degradations: list[str]) -> list[str]:
    """Canonical names of degradation specs; one-line ValueError naming --degradation for a bad one."""
    names = []
    for spec in degradations:
        try:
            names.append(canonical_degradation(spec))
        except ValueError as e:
            raise ValueError(f"--degradation: {e}") from None
    return names


def check_conditioning(method: Method, scales: list[int], degradations: list[str],
                       do: dict[str, float] | None, condition: str) -> None:
    """Fail before any work (one line, naming --do or --condition) when `do` / `condition` cannot be applied."""
    if condition not in CONDITIONS:
        raise ValueError(f"--condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    if do:
        from causalsr.inference.api import normalise_do

        try:
            normalise_do(do)
        except ValueError as e:
            raise ValueError(f"--do: {e}") from None
    for option, used in (("--do", bool(do)), ("--condition oracle", condition == "oracle")):
        if not used:
            continue
        if not getattr(method, "conditionable", False):
            raise ValueError(f"{option}: method {method.name!r} has no degradation latent Z; it needs a causalsr model")
        for s in scales:
            if not cast(CausalSRMethod, method).has_named_factors(s):  # conditionable: a CausalSRMethod
                raise ValueError(f"{option}: the x{s} model of {method.name!r} has no named degradation factors "
                                 f"(plain model)")
    if condition == "oracle":
        for spec in degradations:
            told_factors(spec, scales[0])


def evaluate(method: Method, datasets: list[str], scales: list[int], degradation: str | list[str] = "bicubic",
             metrics: tuple[str, ...] = ("psnr", "ssim"), grey_convention: str = "basicsr",
             save_images: Path | None = None, lr_cache: Path | None = None,
             progress: bool | None = None, do: dict[str, float] | None = None,
             condition: str = "blind", metrics_device: str = "cpu") -> list[DatasetResult]:
    """Benchmark `method` on every dataset (name or folder) at every scale and degradation.

    `degradation`: one preset or spec (see `degradations.parse_degradation`) or a
    list of them. `condition` ("blind" or "oracle") and `do` ({factor: physical
    value}) set how our models are conditioned (module docstring); other methods
    accept neither. Unreadable or failing images are listed in each result's
    `failures` and skipped. `progress=None` shows a tqdm bar on stderr only when
    it is a terminal. Saved images go to ``save_images/method/dataset/xS/``,
    plus a sub-folder per degradation and conditioning unless the run is one
    blind degradation without `do`. Perceptual metrics (LPIPS, DISTS) run on `metrics_device`.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    for s in scales:
        check_scale(method, s)
    specs = [degradation] if isinstance(degradation, str) else list(degradation)
    if not specs:
        raise ValueError("--degradation: give at least one preset or spec")
    names = check_degradations(specs)  # fail on a bad spec before any work
    do = dict(do or {})
    check_conditioning(method, scales, names, do, condition)
    plain_run = len(names) == 1 and condition == "blind" and not do
    resolved = [resolve_dataset(d) for d in datasets]
    results = []
    for name, files in resolved:
        for scale in scales:
            for deg in names:
                told = told_factors(deg, scale) if condition == "oracle" else None
                res = DatasetResult(method.name, name, scale, deg, tuple(metrics), condition=condition, do=do)
                sub = None if plain_run else _image_folder(deg, condition, do)
                _run_images(res, method, files, scale, deg, tuple(metrics), grey_convention, lr_cache, do, told,
                            save_images, sub, progress, metrics_device)
                results.append(res)
    return results


def _image_folder(degradation: str, condition: str, do: dict[str, float]) -> str:
    """Sub-folder name of saved images for one degradation and conditioning, e.g. "noise-15_oracle_do-noise=0"."""
    tags = [degradation.replace(":", "-")] + (["oracle"] if condition != "blind" else []) + \
        ([f"do-{','.join(f'{k}={v:g}' for k, v in do.items())}"] if do else [])
    return "_".join(tags)


def _run_images(res: DatasetResult, method: Method, files: list[Path], scale: int, degradation: str,
                metrics: tuple[str, ...], grey_convention: str, lr_cache: Path | None, do: dict[str, float],
                told: dict[int, float] | None, save_images: Path | None, sub: str | None,
                progress: bool | None, metrics_device: str = "cpu") -> None:
    """Evaluate every file of one (dataset, scale, degradation) into `res`; failures are recorded, not raised."""
    name = res.dataset
    desc = f"{res.label} {name} x{scale}" + ("" if sub is None else f" {degradation}")
    for path in tqdm(files, desc=desc, unit="img", disable=None if progress is None else not progress):
        try:
            hr, grey = load_hr_uint8(path)
            sr, values = evaluate_image(method, hr, scale, degradation, metrics, grey, grey_convention,
                                        lr_cache, do, told, metrics_device)
        except ValueError as e:  # ImageReadError included
            msg = str(e)
            res.failures.append(msg if str(path) in msg else f"{path}: {msg}")
            continue
        res.per_image.append({"name": path.stem, **values})
        if save_images is not None:
            folder = Path(save_images) / method.name / name / f"x{scale}"
            out = (folder if sub is None else folder / sub) / output_name(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            write_image(out, sr)


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
        lines.append(f"| {r.label} | {r.dataset} | x{r.scale} | {r.degradation} | {len(r.per_image)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _git_commit() -> str:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never touch the index others may be using
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10, env=env).stdout.strip()
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

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def run_meta(command: str, grey_convention: str | None = None) -> dict:
    """The "meta" block of a results JSON: when, where, which code, how (the grey convention where metrics use one)."""
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": _machine(), "commit": _git_commit(), "command": command}
    if grey_convention is not None:
        meta["grey_convention"] = grey_convention
    return meta
