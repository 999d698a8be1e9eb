"""The public inference API: `load`, `Upscaler.upscale / analyze / do / samples`.

::

    import causalsr
    model = causalsr.load("x4")                  # bundled weights, or a checkpoint path
    sr = model.upscale(pil_image, tile="auto")   # PIL in -> PIL out; ndarray in -> ndarray out
    print(model.analyze(pil_image))              # "noise sigma 14.2 +- 1.8 (0-255)" ...
    clean = model.do(pil_image, noise=0)         # restoration under do(noise = 0)

This module only gathers the API's names; each lives with its one job:
`upscaler` (the `Upscaler` class), `loading` (`load`, `load_for_scale`),
`conditioning` (Z and C of an image, do() values), `report` (`analyze`'s
result), `jpeg_evidence` (a JPEG file's stated quality as evidence for
`upscale`), `images` (image kinds in and out), `tta` and `tiling`.
"""
from __future__ import annotations

from causalsr.inference.conditioning import Conditioning, normalise_do
from causalsr.inference.images import ImageLike
from causalsr.inference.jpeg_evidence import JPEG_EVIDENCE
from causalsr.inference.loading import load, load_for_scale
from causalsr.inference.report import FactorEstimate, FactorReport
from causalsr.inference.upscaler import BF16_TOLERANCE, PRECISIONS, Upscaler

__all__ = ["load", "load_for_scale", "normalise_do", "Upscaler", "Conditioning", "FactorReport", "FactorEstimate",
           "PRECISIONS", "BF16_TOLERANCE", "ImageLike", "JPEG_EVIDENCE"]
