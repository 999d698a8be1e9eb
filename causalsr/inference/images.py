"""The image kinds the API takes and gives back: PIL in -> PIL out, array in -> array out, LoadedImage in -> out.

Decoding is `causalsr.data.imageio`'s (`from_pil`, `from_array`); this module
adds only what restoration needs around it: the model's input tensor, the
output packaged as its input was, alpha upscaled beside the restorer, and grey
inputs kept grey.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from causalsr.data.imageio import LoadedImage, from_array, from_pil

ImageLike = Image.Image | np.ndarray | LoadedImage
_GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 luma (rgb2gray)


def to_loaded(img: ImageLike) -> LoadedImage:
    """Any accepted image kind as a `LoadedImage`; TypeError for anything else."""
    if isinstance(img, LoadedImage):
        return img
    if isinstance(img, Image.Image):
        return from_pil(img, Path(getattr(img, "filename", "") or "<PIL.Image>"))
    if isinstance(img, np.ndarray):
        return from_array(img)
    raise TypeError(f"expected a PIL.Image, a numpy array or a LoadedImage, got {type(img).__name__}")


def like_input(src: ImageLike, out: LoadedImage) -> ImageLike:
    """Package `out` as the same kind (and layout) of object as `src`."""
    if isinstance(src, LoadedImage):
        return out
    planes = out.rgb if not out.grey else out.rgb[..., 0]
    if isinstance(src, np.ndarray):
        if out.grey:
            planes = planes[..., None] if src.ndim == 3 else planes
        if out.alpha is not None:
            planes = np.dstack([planes, out.alpha])
        return planes
    if out.grey and out.bit_depth == 16:
        return Image.fromarray(planes)  # I;16 (PIL has no 16-bit grey+alpha mode)
    mode = ("L" if out.grey else "RGB") + ("A" if out.alpha is not None else "")
    return Image.fromarray(np.dstack([planes, out.alpha]) if out.alpha is not None else planes, mode)


def as_tensor(img: LoadedImage, device: torch.device) -> torch.Tensor:
    """1x3xHxW float in [0, 1] on `device`.

    Unlike `imageio.to_tensor` it keeps the array's HWC memory order (channels-last strides), the layout
    the restorer has always been run on here, so outputs stay bit-identical to earlier releases.
    """
    peak = 65535.0 if img.rgb.dtype == np.uint16 else 255.0
    return torch.from_numpy(img.rgb.astype(np.float32) / peak).permute(2, 0, 1)[None].to(device)


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of an alpha plane, kept in its dtype."""
    h, w = alpha.shape
    up = np.asarray(Image.fromarray(alpha.astype(np.float32)).resize((w * scale, h * scale), Image.Resampling.BICUBIC))
    peak = float(np.iinfo(alpha.dtype).max)
    return np.clip(np.floor(up + 0.5), 0, peak).astype(alpha.dtype)


def resize_loaded(img: LoadedImage, size: tuple[int, int]) -> LoadedImage:
    """`img` resized to `size` (width, height) with Pillow's Lanczos filter (a = 3), each plane in float32, then
    rounded and clipped to its dtype; bit depth, grey, alpha and metadata are kept."""
    peak = float(np.iinfo(img.rgb.dtype).max)

    def plane(a: np.ndarray) -> np.ndarray:
        out = np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS))
        return np.clip(np.floor(out + 0.5), 0, peak).astype(a.dtype)

    channels = 1 if img.grey else 3
    rgb = np.dstack([plane(img.rgb[..., c]) for c in range(channels)])
    rgb = np.repeat(rgb, 3, axis=2) if img.grey else rgb
    alpha = plane(img.alpha) if img.alpha is not None else None
    return replace(img, rgb=rgb, alpha=alpha)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 -> HxWx3 with three equal BT.601 luma channels, in row chunks to bound memory."""
    out = np.empty_like(rgb)
    for r in range(0, rgb.shape[0], 256):
        y = np.floor(rgb[r:r + 256].astype(np.float32) @ _GREY_WEIGHTS + 0.5)
        out[r:r + 256] = y.astype(rgb.dtype)[..., None]
    return out
