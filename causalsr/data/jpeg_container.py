"""The JPEG quality a file's container states: read from its quantisation tables, not from its pixels.

A JPEG file carries the quantisation tables it was encoded with. Encoders built on the IJG
library (libjpeg, libjpeg-turbo: Pillow, ImageMagick, most web tools) scale the standard
luminance table of the JPEG specification (ITU-T T.81 Annex K, Table K.1) by the quality q:
scale = 5000 / q below 50, else 200 - 2 q; entry = floor((base * scale + 50) / 100), kept
in 1..255 (baseline). `container_quality` finds the q whose scaled table is nearest (sum of
absolute differences) to the file's luminance table (table 0). For files written with the
standard tables the match is exact, so the quality is exactly the one written; other encoders
(cameras, Photoshop) use their own tables, and the nearest IJG quality is then only a
description of how coarse the table is (`exact` is False).

This is a property of the file, not of the image: a JPEG that was decoded, edited or degraded
and saved again states its last quality, while its pixels may carry an earlier, coarser
compression. `causalsr analyze` reports it beside the pixel-based estimate for that reason.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

STANDARD_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)
"""ITU-T T.81 Table K.1, in natural (row-major) order, as Pillow's `Image.quantization` lists tables."""


def ijg_luminance_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg's `jpeg_set_quality(quality, force_baseline=TRUE)` writes (natural order)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality!r}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((STANDARD_LUMINANCE * scale + 50) // 100, 1, 255)


_TABLES = np.stack([ijg_luminance_table(q) for q in range(1, 101)])


@dataclass(frozen=True)
class ContainerQuality:
    """The quality a JPEG file's luminance table encodes.

    Attributes:
        quality: the IJG quality (1-100) whose scaled standard table is nearest the file's.
        exact: the file's table equals that quality's table entry for entry.
        distance: sum of absolute differences between the two tables (0 when exact).
    """

    quality: int
    exact: bool
    distance: int

    def __str__(self) -> str:
        how = ("standard IJG tables" if self.exact
               else f"nearest IJG quality; non-standard tables, distance {self.distance}")
        return f"JPEG file quality {self.quality} ({how})"

    def to_dict(self) -> dict:
        return {"quality": self.quality, "exact": self.exact, "distance": self.distance}


def quality_from_table(table) -> ContainerQuality:
    """The `ContainerQuality` of a 64-entry luminance table in natural order (ties: the higher quality)."""
    t = np.asarray(list(table), dtype=np.int64)
    if t.shape != (64,):
        raise ValueError(f"a JPEG quantisation table has 64 entries, got {t.size}")
    dist = np.abs(_TABLES - t).sum(axis=1)
    best = int(np.flatnonzero(dist == dist.min())[-1])
    return ContainerQuality(best + 1, bool(dist[best] == 0), int(dist[best]))


def container_quality(source: str | os.PathLike | Image.Image) -> ContainerQuality | None:
    """The quality a JPEG file (a path, or a PIL image opened from one) states; None for anything else.

    A path is opened only to read its header (the pixels are not decoded). A PIL image keeps its
    tables only while it is the image `Image.open` returned (a converted or copied image has none).
    Unreadable files give None: reading pixels is the caller's business, and it reports its own errors.
    """
    if isinstance(source, Image.Image):
        return _from_image(source)
    try:
        with Image.open(source) as im:
            return _from_image(im)
    except (OSError, ValueError):
        return None


def _from_image(im: Image.Image) -> ContainerQuality | None:
    tables = getattr(im, "quantization", None)
    if im.format not in ("JPEG", "MPO") or not tables or 0 not in tables:
        return None
    return quality_from_table(tables[0])
