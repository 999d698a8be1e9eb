"""The demo page's logic as plain functions over numpy arrays; no gradio, so it is unit-tested without it.

Everything the page computes goes through the public API (`causalsr.load`,
`Upscaler.upscale` with `do`, `Upscaler.analyze`); this module only checks
uploads, turns slider positions into interventions and packages results.
Only the bundled models are ever loaded: the page names a scale, never a path.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from causalsr.data.imageio import ImageReadError, read_image, to_uint8, write_image
from causalsr.factors import FACTORS
from causalsr.inference.api import FactorReport, Upscaler, load
from causalsr.inference.bundled import BUNDLED

TILE = "auto"  # as `causalsr upscale`: tiles only when the image does not fit in free memory
TILE_OVERLAP = 16
MIN_SIDE = 8  # LR pixels: the smallest tile `Upscaler` accepts
ACCEPTED = "PNG, JPEG, WebP, BMP or TIFF"


class UploadError(ValueError):
    """An upload the demo refuses; the message is one line meant for the page (it names no server path)."""


@dataclass(frozen=True)
class Limits:
    """Upload limits: file size and pixel count (width * height of the input, before upscaling)."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 1_000_000  # about 1000 x 1000: an x4 result in well under a minute on a 2-core CPU


@dataclass(frozen=True)
class SliderSpec:
    """One do() slider: the factor it sets, its range and step, its "absent" value and what moving it means."""

    name: str
    label: str
    low: float
    high: float
    step: float
    absent: float  # where the slider rests before an upload: no such degradation (blur 0, noise 0, JPEG 100)
    meaning: str


_STEPS = {"blur": 0.05, "noise": 0.5, "jpeg": 1.0}
_LABELS = {"blur": "blur sigma (HR px)", "noise": "noise sigma (0-255)", "jpeg": "JPEG quality (10-100)"}
# The same meaning as `causalsr upscale --do`: the slider sets the degradation the restorer is *told*
# caused the image, in place of its own estimate; it does not add or remove degradation.
_MEANINGS = {
    "blur": "tell the restorer the image was blurred this much: a larger blur sharpens more",
    "noise": "tell the restorer the image had this much noise: below the true level keeps grain, above it smooths",
    "jpeg": "tell the restorer the image was compressed at this quality: a lower quality deblocks harder",
}
SLIDERS: tuple[SliderSpec, ...] = tuple(
    SliderSpec(f.name, f"do({f.name}): {_LABELS[f.name]}", f.low, f.high, _STEPS[f.name], f.absent,
               _MEANINGS[f.name])
    for f in FACTORS)


# ------------------------------------------------------------------ uploads
def _strip_path(msg: str, path: Path) -> str:
    """`read_image` messages start with the file's path: a server temp path the page must not show."""
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def load_upload(path: str | os.PathLike, limits: Limits = Limits()) -> np.ndarray:
    """An uploaded file -> HxWx3 uint8 RGB array, or `UploadError` with a message for the page.

    Checks run cheapest first: byte size, then the header's pixel count (before
    decoding, so a decompression bomb costs nothing), then a full decode.
    16-bit images are shown and restored in 8 bit; alpha is dropped.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"The file is empty (0 bytes): upload a {ACCEPTED} image.")
    if size > limits.max_bytes:
        raise UploadError(f"The file is {size / 2**20:.1f} MB, over this demo's "
                          f"{limits.max_bytes / 2**20:.0f} MB limit.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel limit below applies
            with Image.open(path) as im:
                w, h = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError(f"This file is not an image the demo can read: upload a {ACCEPTED} image.") from None
    if w * h > limits.max_pixels:
        raise UploadError(f"The image is {w}x{h} ({w * h / 1e6:.1f} megapixels), over this demo's "
                          f"{limits.max_pixels / 1e6:.1f} megapixel limit: crop or downscale it, or use "
                          "`causalsr upscale`, which tiles images of any size.")
    if min(w, h) < MIN_SIDE:
        raise UploadError(f"The image is {w}x{h}: each side must be at least {MIN_SIDE} pixels.")
    try:
        img = read_image(path, max_pixels=limits.max_pixels)
    except ImageReadError as e:
        raise UploadError(f"The image could not be decoded: {_strip_path(str(e), path)}.") from None
    return np.ascontiguousarray(to_uint8(img.rgb))


# ------------------------------------------------------------------ models
@dataclass
class Models:
    """The bundled models, each loaded on first use and then shared by every request."""

    device: str = "cpu"
    _loaded: dict[str, Upscaler] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> Upscaler:
        """The bundled model `name` ("x2", "x3" or "x4"); anything else is refused, never taken as a path."""
        if name not in BUNDLED:
            raise UploadError(f"Unknown scale {name!r}: choose one of {', '.join(BUNDLED)}.")
        with self._lock:  # two first requests at once must not load the same weights twice
            if name not in self._loaded:
                self._loaded[name] = load(name, device=self.device)
            return self._loaded[name]


# ------------------------------------------------------------------ diagnosis and sliders
def describe(report: FactorReport) -> str:
    """The estimate as markdown lines, e.g. "- noise sigma 14.2 +- 1.8 (0-255)"."""
    return "\n".join(f"- {f}" for f in report.factors.values())


def slider_start(report: FactorReport) -> dict[str, float]:
    """Where each slider starts: the estimate, rounded to the slider's step (so the page can show it exactly)."""
    return {s.name: _snap(report.factors[s.name].value, s) for s in SLIDERS}


def _snap(value: float, spec: SliderSpec) -> float:
    snapped = spec.low + round((value - spec.low) / spec.step) * spec.step
    return round(min(max(snapped, spec.low), spec.high), 6)


def interventions(values: Mapping[str, float], start: Mapping[str, float]) -> dict[str, float]:
    """The do() of the sliders that were moved off the estimate; one left at its start stays blind.

    A slider at its start means "no intervention", not do(estimate): the page's
    first result is then exactly the blind restoration, and moving one slider
    changes one factor.
    """
    do = {}
    for spec in SLIDERS:
        value, origin = float(values[spec.name]), start.get(spec.name)
        if origin is None or abs(value - origin) >= spec.step / 2:
            do[spec.name] = min(max(value, spec.low), spec.high)
    return do


def format_do(do: Mapping[str, float]) -> str:
    """"do(noise=30, jpeg=60)", or "blind (the model's own estimate)" without interventions."""
    if not do:
        return "blind (the model's own estimate)"
    return "do(" + ", ".join(f"{k}={v:g}" for k, v in do.items()) + ")"


# ------------------------------------------------------------------ restoring
def restore(up: Upscaler, img: np.ndarray, do: Mapping[str, float] | None = None) -> np.ndarray:
    """`img` (HxWx3 uint8) super-resolved under `do`, tiled as `causalsr upscale` tiles."""
    out = up.upscale(img, tile=TILE, tile_overlap=TILE_OVERLAP, do=dict(do) if do else None)
    assert isinstance(out, np.ndarray)  # an array in gives an array out
    return out


def before_image(img: np.ndarray, scale: int) -> np.ndarray:
    """The input enlarged (bicubic) to the output's size, so the before/after slider lines them up."""
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w * scale, h * scale), Image.Resampling.BICUBIC))


# ------------------------------------------------------------------ result files
def save_result(img: np.ndarray, folder: str | os.PathLike, max_age_s: float = 3600.0) -> Path:
    """Write `img` as a new PNG in `folder` for download; delete results there older than `max_age_s`.

    Each result gets its own unique name, so concurrent users never overwrite
    each other's download; pruning by age keeps a long-running server's disk bounded.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prune(folder, max_age_s)
    fd, name = tempfile.mkstemp(prefix="causalsr_", suffix=".png", dir=folder)
    os.close(fd)
    write_image(name, img)
    return Path(name)


def prune(folder: str | os.PathLike, max_age_s: float) -> int:
    """Delete the result PNGs in `folder` older than `max_age_s`; returns how many went."""
    cutoff = time.time() - max_age_s
    gone = 0
    for f in Path(folder).glob("causalsr_*.png"):
        try:
            if f.stat().st_mtime < cutoff:
                f.unlink()
                gone += 1
        except FileNotFoundError:  # another request pruned it first
            pass
    return gone


__all__ = ["Limits", "UploadError", "SliderSpec", "SLIDERS", "Models", "load_upload", "describe", "slider_start",
           "interventions", "format_do", "restore", "before_image", "save_result", "prune"]
