"""`upscale`'s JPEG evidence: a JPEG file's stated quality as an upper bound on the JPEG factor.

A JPEG file states the quality of its last save (`causalsr.data.jpeg_container`). An image saved
at quality q carries at least q's artefacts (an earlier, coarser save only adds to them), so when
the posterior reads a higher quality than the file states, the file is right and the restorer is
told the file's quality: told jpeg = min(posterior estimate, container quality). Only files with
the standard IJG tables count (`exact`): other encoders' tables give only a nearest quality.

Measured by `benchmarks/jpeg_evidence.py` (docs/benchmarks.md, issue 17): it gains most where the
posterior is fooled, on a JPEG cropped and saved again (the first save's 8x8 grid shifted), and
is within a few hundredths of a dB of blind on single saves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from causalsr.data.imageio import LoadedImage
from causalsr.data.jpeg_container import ContainerQuality, container_quality
from causalsr.factors import FACTORS, factor_index

JPEG_EVIDENCE = ("container", "none")
"""`upscale(jpeg_evidence=...)`: use the file's container quality as evidence, or the pixels alone."""


def check_jpeg_evidence(value: str) -> None:
    """ValueError unless `value` is one of JPEG_EVIDENCE."""
    if value not in JPEG_EVIDENCE:
        raise ValueError(f"jpeg_evidence must be one of {', '.join(JPEG_EVIDENCE)}, got {value!r}")


def container_of(img: Any) -> ContainerQuality | None:
    """The quality the JPEG file behind `img` states: a PIL image as `Image.open` returned it, or a
    `LoadedImage` read from a file; None for anything else (arrays, other formats, converted images)."""
    if isinstance(img, Image.Image):
        return container_quality(img)
    if isinstance(img, LoadedImage) and Path(img.path).is_file():  # Path(): some callers give a str
        return container_quality(img.path)
    return None


def evidence_do(estimate: float, container: ContainerQuality | None) -> dict[str, float]:
    """{"jpeg": the container quality} when standard tables state a quality below the posterior's
    `estimate`, kept in the factor's range; else {} (the posterior's reading stands)."""
    if container is None or not container.exact or container.quality >= estimate:
        return {}
    return {"jpeg": max(float(container.quality), FACTORS[factor_index("jpeg")].low)}
