"""Image files in and out: `read_image`, `write_image` (atomic); PIL images and arrays in; tensor conversion.

Reading keeps bit depth (8 or 16) and alpha, applies EXIF orientation, forces
a full decode so truncated files fail here, and turns every failure into an
`ImageReadError` with a one-line message naming the file. It also keeps the
file's ICC profile and EXIF (with the orientation reset to 1, as the pixels are
upright now), which `write_image` can carry over to an output. Pillow decodes 16-bit
RGB(A) PNGs to 8 bit, so those are decoded twice (high bytes, low bytes) and
recombined; Pillow cannot write them, so a small PNG encoder does.
"""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from causalsr.atomic import atomic_path

MAX_PIXELS = 200_000_000
"""Default decompression-bomb limit (width * height) for `read_image`."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WEBP"}
_GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_PNG_16_RAWMODES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}  # big-endian raw -> low-byte reader


class ImageReadError(ValueError):
    """An image file could not be read; the message is one line naming the file."""


@dataclass
class LoadedImage:
    """A decoded image: RGB (grey sources replicated to 3 channels), optional alpha."""

    rgb: np.ndarray  # HxWx3, uint8 or uint16
    alpha: np.ndarray | None  # HxW, same dtype as rgb
    bit_depth: int  # 8 or 16
    grey: bool  # source was single-channel (L, LA, I;16)
    path: Path
    icc_profile: bytes | None = None  # the file's ICC profile
    exif: bytes | None = None  # the file's EXIF ("Exif\0\0" + TIFF data), orientation reset to 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports it."""
        return self.rgb.shape[1], self.rgb.shape[0]


def is_image_path(path: str | os.PathLike) -> bool:
    """True for a file name with a supported image extension (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _open(path: Path, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
        im = Image.open(path)
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise ImageReadError(f"{path}: image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the "
                             f"{max_pixels / 1e6:.0f} megapixel limit (possible decompression bomb)")
    return im


def _metadata(im: Image.Image) -> tuple[bytes | None, bytes | None]:
    """(ICC profile, EXIF bytes with the orientation reset to 1) of an opened image; None where it has none.

    A CMYK file's profile describes CMYK, not the RGB it is decoded to, so it is not kept."""
    icc = im.info.get("icc_profile") if im.mode != "CMYK" else None
    exif = im.getexif()
    if ExifTags.Base.Orientation in exif:
        exif[ExifTags.Base.Orientation] = 1
    return icc, (exif.tobytes() if len(exif) else None)


def _decode(path: Path, max_pixels: int) -> LoadedImage:
    im = _open(path, max_pixels)
    with im:
        tile = getattr(im, "tile", [])  # ImageFile's decoder tiles (not in Image's type)
        raw = tile[0].args if im.format == "PNG" and len(tile) == 1 else None
        im.load()
        upright = ImageOps.exif_transpose(im)
        icc, exif = _metadata(im)  # after the transpose: it resets the orientation in im's EXIF
        im = upright
        if raw in _PNG_16_RAWMODES:
            with _open(path, max_pixels) as lo_im:
                lo_im.tile = [lo_im.tile[0]._replace(args=_PNG_16_RAWMODES[raw])]
                lo_im.load()
                lo = np.asarray(ImageOps.exif_transpose(lo_im), dtype=np.uint16)
            arr = np.asarray(im, dtype=np.uint16) * 256 + lo
            return LoadedImage(arr[..., :3].copy(), arr[..., 3].copy() if arr.shape[2] == 4 else None, 16, False, path,
                               icc, exif)
        return replace(from_pil(im, path), icc_profile=icc, exif=exif)


def from_pil(im: Image.Image, path: Path) -> LoadedImage:
    """A decoded PIL image as a `LoadedImage` (CMYK and palette images become RGB/RGBA; 16-bit grey stays 16-bit).

    ImageReadError (a ValueError) for float images and for 32-bit grey values outside 0..65535.
    """
    mode = im.mode
    if mode == "F":
        raise ImageReadError(f"{path}: floating-point images (mode F) are not supported")
    if mode in _GREY_16:
        grey = np.asarray(im)
        if grey.min(initial=0) < 0 or grey.max(initial=0) > 65535:
            raise ImageReadError(f"{path}: {mode} image has values outside 0..65535 (32-bit data is not supported)")
        grey = grey.astype(np.uint16)
        return LoadedImage(np.repeat(grey[..., None], 3, axis=2), None, 16, True, path)
    if mode in ("1", "L", "LA", "La"):
        arr = np.asarray(im.convert("LA"))
        alpha = arr[..., 1].copy() if mode in ("LA", "La") else None
        return LoadedImage(np.repeat(arr[..., :1], 3, axis=2), alpha, 8, True, path)
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
    arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    return LoadedImage(arr[..., :3].copy(), arr[..., 3].copy() if has_alpha else None, 8, False, path)


def from_array(a: np.ndarray, path: Path = Path("<array>")) -> LoadedImage:
    """HxW, HxWx1 (grey), HxWx2 (grey+alpha), HxWx3 (RGB), HxWx4 (RGBA); uint8 or uint16."""
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected a uint8 or uint16 image array, got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW or HxWxC image array with C in 1..4, got shape {a.shape}")
    c = a.shape[2]
    grey = c <= 2
    rgb = np.repeat(a[..., :1], 3, axis=2) if grey else a[..., :3]
    alpha = a[..., c - 1].copy() if c in (2, 4) else None
    return LoadedImage(np.ascontiguousarray(rgb), alpha, 16 if a.dtype == np.uint16 else 8, grey, path)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Decode an image file fully; any failure raises `ImageReadError` naming the file.

    Supports PNG, JPEG, BMP, TIFF, WebP (anything Pillow opens) in modes L, LA,
    RGB, RGBA, P (transparency becomes alpha), CMYK, 16-bit grey (I;16*, I) and
    16-bit RGB(A) PNG. Multi-frame files give their first frame.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    try:
        return _decode(path, max_pixels)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a recognised image file") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{path}: image too large (possible decompression bomb): {_one_line(e)}") from None
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError, IndexError) as e:
        # Pillow reports corrupt data with these (e.g. "image file is truncated").
        raise ImageReadError(f"{path}: cannot decode image ({_one_line(e)})") from None


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png16(pixels: np.ndarray, icc_profile: bytes | None = None, exif: bytes | None = None) -> bytes:
    """16-bit PNG bytes for a uint16 HxWx3 (RGB) or HxWx4 (RGBA) array, with an ICC profile (iCCP) and EXIF (eXIf)."""
    h, w, c = pixels.shape
    colour_type = {3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter type 0 per row
    meta = b""
    if icc_profile:
        meta += _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile))
    if exif:
        meta += _png_chunk(b"eXIf", exif.removeprefix(b"Exif\0\0"))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
            + meta + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _png_chunk(b"IEND", b""))


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """An 8-bit copy of a uint8 or uint16 image: 16-bit values round to nearest, (x + 128) // 257,
    the inverse of the 8 -> 16 bit x * 257. The one 16 -> 8 bit conversion of the package."""
    return _to_depth(arr, 8)


def _to_depth(arr: np.ndarray, bit_depth: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr if bit_depth == 8 else arr.astype(np.uint16) * 257
    if arr.dtype == np.uint16:
        return arr if bit_depth == 16 else ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise TypeError(f"write_image: expected a uint8 or uint16 array, got {arr.dtype}")


def write_image(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None,
                bit_depth: int = 8, quality: int = 95, icc_profile: bytes | None = None,
                exif: bytes | None = None) -> None:
    """Write an image atomically; the format follows the file extension.

    `rgb` is HxWx3 (or HxW grey) uint8/uint16, `alpha` HxW. 16-bit output stays
    16-bit for PNG (and for grey TIFF); JPEG, WebP, BMP and RGB TIFF are written
    as 8 bit. JPEG and BMP get no alpha channel, so alpha is dropped there. `quality`
    applies to JPEG and WebP. `icc_profile` and `exif` (e.g. a `LoadedImage`'s) are
    written into PNG, JPEG and WebP files (the ICC profile into TIFF too).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unsupported output extension {ext or '(none)'}; "
                         f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if bit_depth not in (8, 16):
        raise ValueError(f"{path}: bit_depth must be 8 or 16, got {bit_depth}")
    if rgb.ndim == 3 and rgb.shape[2] == 1:
        rgb = rgb[..., 0]
    if not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"{path}: expected an HxWx3 or HxW array, got shape {rgb.shape}")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f"{path}: alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    if ext in (".jpg", ".jpeg", ".bmp"):  # no alpha channel there (Pillow reads BMP back as RGB)
        alpha = None
    grey = rgb.ndim == 2
    depth = 16 if bit_depth == 16 and (ext == ".png" or (ext in (".tif", ".tiff") and grey and alpha is None)) else 8
    px = _to_depth(rgb, depth)
    a = _to_depth(alpha, depth) if alpha is not None else None
    with atomic_path(path) as tmp:
        if depth == 16 and (not grey or a is not None):
            # Pillow writes neither 16-bit RGB(A) nor reads 16-bit grey+alpha back exactly,
            # so grey+alpha is stored as 16-bit RGBA.
            rgb16 = np.dstack([px] * 3) if grey else px
            tmp.write_bytes(encode_png16(np.dstack([rgb16, a]) if a is not None else rgb16, icc_profile, exif))
            return
        if depth == 16:
            im = Image.fromarray(np.ascontiguousarray(px, dtype=np.uint16))  # mode I;16
        elif grey and a is not None:
            im = Image.merge("LA", [Image.fromarray(px), Image.fromarray(a)])
            if ext == ".webp":  # WebP has no grey+alpha mode
                im = im.convert("RGBA")
        else:
            im = Image.fromarray(np.ascontiguousarray(np.dstack([px, a]) if a is not None else px))
        fmt = _FORMATS[ext]
        kwargs: dict[str, object] = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
        if icc_profile and fmt != "BMP":
            kwargs["icc_profile"] = icc_profile
        if exif and fmt in ("PNG", "JPEG", "WEBP"):
            kwargs["exif"] = exif
        im.save(tmp, format=fmt, **kwargs)


def to_tensor(img: LoadedImage) -> torch.Tensor:
    """1x3xHxW float32 in [0, 1] from a `LoadedImage` (alpha ignored)."""
    scale = 65535.0 if img.rgb.dtype == np.uint16 else 255.0
    return torch.from_numpy(img.rgb.astype(np.float32) / scale).permute(2, 0, 1).unsqueeze(0).contiguous()


def quantise(x: torch.Tensor, bit_depth: int = 8) -> torch.Tensor:
    """Snap float [0, 1] values to the 8/16-bit grid (clamp, round half up); stays float in [0, 1]."""
    peak = float(2**bit_depth - 1)
    return torch.floor(x.clamp(0, 1) * peak + 0.5) / peak


def from_tensor(x: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """(1x)3xHxW float [0, 1] -> HxWx3 uint8/uint16 array, clamped and rounded."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"from_tensor: expected a single image, got batch of {x.shape[0]}")
        x = x[0]
    if x.dim() != 3:
        raise ValueError(f"from_tensor: expected (1x)CxHxW, got shape {tuple(x.shape)}")
    peak = 2**bit_depth - 1
    q = torch.floor(x.detach().float().cpu().clamp(0, 1) * peak + 0.5)
    return q.permute(1, 2, 0).numpy().astype(np.uint16 if bit_depth == 16 else np.uint8)
