"""The public inference API: `load`, `Upscaler.upscale / analyze / do / samples`.

::

    import causalsr
    model = causalsr.load("x4")                  # bundled weights, or a checkpoint path
    sr = model.upscale(pil_image, tile="auto")   # PIL in -> PIL out; ndarray in -> ndarray out
    print(model.analyze(pil_image))              # "noise sigma 14.2 +- 1.8 (0-255)" ...
    clean = model.do(pil_image, noise=0)         # restoration under do(noise = 0)

Conditioning is computed once per image: the degradation posterior q(Z | Y)
and the semantic context C both see the whole LR image (the posterior analyses
full-resolution crops of a large image, the encoder a resized copy), and every
tile is restored with that same Z and C. The context map is sampled at each
tile's position (`ctx_box`), so tiles agree with an untiled run.
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from causalsr.data.imageio import LoadedImage
from causalsr.factors import FACTORS, N_NAMED, denormalise, factor_index, scale_factors
from causalsr.inference import bundled
from causalsr.inference.tiling import Box, auto_tile_size, tiled_apply

if TYPE_CHECKING:
    from causalsr.models.causalsr import CausalSR

logger = logging.getLogger("causalsr")

ImageLike = Image.Image | np.ndarray | LoadedImage
PRECISIONS = ("fp32", "bf16")
BF16_TOLERANCE = 0.05
"""Largest |bf16 - fp32| accepted on the probe tile before falling back to fp32."""

_LABELS = {"blur": "blur sigma", "noise": "noise sigma", "jpeg": "JPEG quality"}
_UNITS = {"blur": "HR px", "jpeg": "10-100"}  # display units; "noise" keeps its "0-255"
_GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 luma (rgb2gray)
_PIL_GREY16 = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_FULL_BOX: Box = (0.0, 0.0, 1.0, 1.0)


# ----------------------------------------------------------------- results
@dataclass
class Conditioning:
    """Per-image conditioning, computed once and shared by every tile.

    Attributes:
        z: latent Z (1, z_dim) used for restoration (posterior mean, a sample,
            or an intervened value); None for a plain model.
        tokens: spatial context tokens C (1, N, d) or None.
        pooled: pooled context (1, d).
        posterior: q(Z | Y) of the whole image (None for a plain model).
    """

    z: torch.Tensor | None
    tokens: torch.Tensor | None
    pooled: torch.Tensor
    posterior: torch.distributions.MultivariateNormal | None


@dataclass
class FactorEstimate:
    """One named degradation factor in physical units, with its posterior standard deviation."""

    name: str
    label: str
    unit: str
    value: float
    std: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.label} {self.value:.1f} +- {self.std:.1f} ({self.unit})"


@dataclass
class FactorReport:
    """What degradation the model sees: named factors with uncertainty from Sigma.

    Attributes:
        factors: name -> estimate (blur, noise, jpeg), values clipped to the factor's range.
        covariance: N_NAMED x N_NAMED posterior covariance of the named factors, physical units.
        correlation: the matching correlation matrix.
        z_mean: the full posterior mean (normalised latent coordinates).
        z_covariance: the full posterior covariance (normalised latent coordinates).
    """

    factors: dict[str, FactorEstimate]
    covariance: np.ndarray
    correlation: np.ndarray
    z_mean: np.ndarray
    z_covariance: np.ndarray

    def __str__(self) -> str:
        return "\n".join(str(f) for f in self.factors.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "factors": {k: {"value": f.value, "std": f.std, "unit": f.unit, "label": f.label}
                        for k, f in self.factors.items()},
            "factor_order": list(self.factors),
            "covariance": self.covariance.tolist(),
            "correlation": self.correlation.tolist(),
            "z_mean": self.z_mean.tolist(),
            "z_covariance": self.z_covariance.tolist(),
        }


# ------------------------------------------------------- image conversion
def _from_pil(im: Image.Image) -> LoadedImage:
    """PIL image -> LoadedImage (CMYK and palette images become RGB/RGBA)."""
    path = Path(getattr(im, "filename", "") or "<PIL.Image>")
    if im.mode in _PIL_GREY16:
        grey = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return LoadedImage(np.repeat(grey[..., None], 3, axis=2), None, 16, True, path)
    if im.mode in ("1", "L", "LA", "La"):
        arr = np.asarray(im.convert("LA"))
        alpha = arr[..., 1].copy() if im.mode in ("LA", "La") else None
        return LoadedImage(np.repeat(arr[..., :1], 3, axis=2), alpha, 8, True, path)
    if im.mode == "F":
        raise TypeError("floating-point PIL images (mode F) are not supported")
    has_alpha = im.mode in ("RGBA", "RGBa", "PA") or (im.mode == "P" and "transparency" in im.info)
    arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    return LoadedImage(arr[..., :3].copy(), arr[..., 3].copy() if has_alpha else None, 8, False, path)


def _from_array(a: np.ndarray) -> LoadedImage:
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
    return LoadedImage(np.ascontiguousarray(rgb), alpha, 16 if a.dtype == np.uint16 else 8, grey, Path("<array>"))


def _to_loaded(img: ImageLike) -> LoadedImage:
    if isinstance(img, LoadedImage):
        return img
    if isinstance(img, Image.Image):
        return _from_pil(img)
    if isinstance(img, np.ndarray):
        return _from_array(img)
    raise TypeError(f"expected a PIL.Image, a numpy array or a LoadedImage, got {type(img).__name__}")


def _like_input(src: ImageLike, out: LoadedImage) -> ImageLike:
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


def _as_tensor(img: LoadedImage, device: torch.device) -> torch.Tensor:
    peak = 65535.0 if img.rgb.dtype == np.uint16 else 255.0
    return torch.from_numpy(img.rgb.astype(np.float32) / peak).permute(2, 0, 1)[None].to(device)


def _upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling of an alpha plane, kept in its dtype."""
    h, w = alpha.shape
    up = np.asarray(Image.fromarray(alpha.astype(np.float32)).resize((w * scale, h * scale), Image.Resampling.BICUBIC))
    peak = float(np.iinfo(alpha.dtype).max)
    return np.clip(np.floor(up + 0.5), 0, peak).astype(alpha.dtype)


def _to_grey(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 -> HxWx3 with three equal BT.601 luma channels, in row chunks to bound memory."""
    out = np.empty_like(rgb)
    for r in range(0, rgb.shape[0], 256):
        y = np.floor(rgb[r:r + 256].astype(np.float32) @ _GREY_WEIGHTS + 0.5)
        out[r:r + 256] = y.astype(rgb.dtype)[..., None]
    return out


# ------------------------------------------------- test-time augmentation
# (flip left-right first, then rot90 k times over the spatial dims): the 8 dihedral transforms
_TTA = tuple((flip, k) for flip in (False, True) for k in range(4))


def _transform(x: torch.Tensor, flip: bool, k: int) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if flip else x, k, (-2, -1))


def _inverse(x: torch.Tensor, flip: bool, k: int) -> torch.Tensor:
    x = torch.rot90(x, -k, (-2, -1))
    return x.flip(-1) if flip else x


def _transform_box(box: Box, flip: bool, k: int) -> Box:
    """Where a tile's box lies in the transformed image (fractions, (top, left, bottom, right))."""
    t, left, b, right = box
    if flip:
        left, right = 1 - right, 1 - left
    for _ in range(k):  # rot90 (counter-clockwise): new row = 1 - old column, new column = old row
        t, left, b, right = 1 - right, t, 1 - left, b
    return (t, left, b, right)


def _transform_tokens(tokens: torch.Tensor | None, flip: bool, k: int) -> torch.Tensor | None:
    """Move square-grid context tokens with the image (the restorer reads them as a g x g map)."""
    if tokens is None:
        return None
    b, n, d = tokens.shape
    g = math.isqrt(n)
    if g * g != n:
        return tokens  # the restorer mean-pools non-square token sets: nothing spatial to move
    grid = tokens.transpose(1, 2).reshape(b, d, g, g)
    return _transform(grid, flip, k).reshape(b, d, n).transpose(1, 2)


def normalise_do(do: Mapping[str, float]) -> dict[int, float]:
    """{factor name: physical value} -> {index in Z: normalised value}.

    ValueError for unknown names or values out of range.
    """
    values = {}
    for name, value in do.items():
        try:
            index = factor_index(name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        f = FACTORS[index]
        if not f.low <= float(value) <= f.high:
            raise ValueError(f"do({name}={value:g}): outside the factor's range {f.low:g}..{f.high:g} ({f.unit})")
        values[index] = float(f.normalise(float(value)))
    return values


# ------------------------------------------------------------------ model
class Upscaler:
    """A loaded CausalSR model with image-level inference: upscale, analyze, intervene.

    Args:
        model: a `causalsr.models.causalsr.CausalSR` (put in eval mode here).
        meta: the checkpoint's metadata (from its `.json`).
        device: torch device for inference.
        precision: default precision for `upscale`, "fp32" or "bf16".
    """

    def __init__(self, model: CausalSR, meta: Mapping[str, Any] | None = None, device: str | torch.device = "cpu",
                 precision: str = "fp32"):
        _check_precision(precision)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.meta = dict(meta or {})
        self.precision = precision
        self._bytes_per_px: float | None = None

    @property
    def scale(self) -> int:
        """The model's SR factor."""
        return int(self.model.scale)

    # -------------------------------------------------------- conditioning
    @torch.no_grad()
    def condition(self, img: ImageLike | torch.Tensor, do: Mapping[str, float] | None = None,
                  generator: torch.Generator | None = None) -> Conditioning:
        """Z and C for a whole image, computed once.

        Args:
            img: the LR image (or a (1, 3, H, W) float tensor in [0, 1]).
            do: interventions {factor: physical value}, e.g. {"noise": 0}; applied
                through the structured prior's do-operator (descendants recomputed).
            generator: if given, Z is sampled from q(Z | Y) instead of taking its mean
                (a counterfactual sample of the degradation).
        """
        lr = img if isinstance(img, torch.Tensor) else _as_tensor(_to_loaded(img), self.device)
        q = self.model.infer_z(lr)
        tokens, pooled = self.model.context(lr)
        z = None
        if q is not None:
            z = q.mean
            if generator is not None:
                eps = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
                z = z + (q.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        return self.intervene(Conditioning(z, tokens, pooled, q), do)

    @torch.no_grad()
    def intervene(self, cond: Conditioning, do: Mapping[str, float] | None) -> Conditioning:
        """`cond` with do(factor = value) applied to Z (values in physical units)."""
        if not do:
            return cond
        if cond.z is None:
            raise ValueError("this model has no degradation latent Z to intervene on (plain model)")
        return replace(cond, z=self.model.do(cond.z, cond.pooled, normalise_do(do)))

    # ------------------------------------------------------------ restoring
    def _restore_tile(self, lr: torch.Tensor, cond: Conditioning, tokens: torch.Tensor | None,
                      box: Box | None) -> torch.Tensor:
        return self.model.restore(lr, cond.z, tokens, cond.pooled, ctx_box=None if box == _FULL_BOX else box)

    def _tile_fn(self, cond: Conditioning, tta: bool, bf16: bool) -> Callable[[torch.Tensor, Box], torch.Tensor]:
        token_views = {t: _transform_tokens(cond.tokens, *t) for t in (_TTA if tta else _TTA[:1])}

        def run(tile: torch.Tensor, box: Box, use_bf16: bool) -> torch.Tensor:
            ctx = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if use_bf16
                   else contextlib.nullcontext())
            with torch.no_grad(), ctx:
                if not tta:
                    return self._restore_tile(tile, cond, cond.tokens, box).float()
                acc = None
                for t, tokens in token_views.items():
                    out = _inverse(self._restore_tile(_transform(tile, *t), cond, tokens, _transform_box(box, *t)), *t)
                    acc = out.float() if acc is None else acc + out.float()
                assert acc is not None  # token_views holds at least the identity view
                return acc / len(token_views)

        def fn(tile: torch.Tensor, box: Box) -> torch.Tensor:
            if not bf16:
                return run(tile, box, False)
            out = run(tile, box, True)
            if not torch.isfinite(out).all():
                logger.warning("causalsr: bf16 gave non-finite values on a tile; recomputed it in fp32")
                out = run(tile, box, False)
            return out

        return fn

    def _bf16_is_safe(self, lr: torch.Tensor, cond: Conditioning) -> bool:
        """Compare bf16 with fp32 on a small centre tile; warn (one line) and refuse if unsafe."""
        _, _, h, w = lr.shape
        ph, pw = min(h, 48), min(w, 48)
        y, x = (h - ph) // 2, (w - pw) // 2
        box = (y / h, x / w, (y + ph) / h, (x + pw) / w)
        probe = lr[..., y:y + ph, x:x + pw]
        ref = self._tile_fn(cond, False, False)(probe, box)
        try:
            with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                test = self._restore_tile(probe, cond, cond.tokens, box).float()
        except RuntimeError as e:  # bf16 kernels missing on this device
            logger.warning("causalsr: bf16 is not supported here (%s); using fp32", str(e).splitlines()[0])
            return False
        if not torch.isfinite(test).all():
            logger.warning("causalsr: bf16 gives non-finite values on this image; using fp32")
            return False
        err = (test - ref).abs().max().item()
        if err > BF16_TOLERANCE:
            logger.warning("causalsr: bf16 differs from fp32 by %.3f (> %.2f) on a probe tile; using fp32",
                           err, BF16_TOLERANCE)
            return False
        return True

    def bytes_per_lr_pixel(self) -> float:
        """Estimated peak activation bytes per LR pixel for the restorer (measured once on a probe tile).

        Peak live memory is taken as the four largest intermediate tensors (a
        residual block holds its input, the skip and two temporaries) plus the
        float32 output tile and its blended copy.
        """
        if self._bytes_per_px is None:
            sizes: list[int] = []
            hooks = [m.register_forward_hook(lambda _m, _i, o: sizes.append(o.numel() * o.element_size())
                                             if isinstance(o, torch.Tensor) else None)
                     for m in self.model.restorer.modules() if not list(m.children())]
            probe = torch.zeros(1, 3, 32, 32, device=self.device)
            cond = Conditioning(None, None, torch.zeros(1, self.model.cfg.sct_dim, device=self.device), None)
            try:
                with torch.no_grad():
                    self._restore_tile(probe, cond, None, None)
            finally:
                for hk in hooks:
                    hk.remove()
            peak = sum(sorted(sizes)[-4:]) / probe[0, 0].numel()
            self._bytes_per_px = peak + 2 * 3 * 4 * self.scale**2
        return self._bytes_per_px

    def resolve_tile(self, tile: int | str | None, shape: tuple[int, int]) -> int | None:
        """The tile side actually used: None (whole image), an int, or "auto" (from available memory)."""
        if tile is None:
            return None
        if tile == "auto":
            side = auto_tile_size(self.bytes_per_lr_pixel())
            return None if max(shape) <= side else side
        tile = int(tile)
        if tile < 8:
            raise ValueError(f"tile must be at least 8 LR pixels, got {tile}")
        return tile

    def _run(self, src: LoadedImage, cond: Conditioning, tile: int | str | None, tile_overlap: int, tta: bool,
             precision: str | None, progress: Callable[[int], None] | None) -> LoadedImage:
        precision = precision or self.precision
        _check_precision(precision)
        lr = _as_tensor(src, self.device)
        h, w = lr.shape[-2:]
        tile = self.resolve_tile(tile, (h, w))
        if tile is not None and tile >= max(h, w):
            tile = None
        overlap = tile_overlap if tile is not None else 0
        if tile is not None and 2 * overlap > tile:
            raise ValueError(f"tile_overlap {overlap} is more than half the tile size {tile}")
        bf16 = precision == "bf16" and self._bf16_is_safe(lr, cond)
        out = np.empty((h * self.scale, w * self.scale, 3), src.rgb.dtype)
        tiled_apply(self._tile_fn(cond, tta, bf16), lr, self.scale, tile, overlap, out, progress)
        del lr
        if src.grey:
            out = _to_grey(out)
        alpha = _upscale_alpha(src.alpha, self.scale) if src.alpha is not None else None
        return LoadedImage(out, alpha, src.bit_depth, src.grey, src.path)

    def restore(self, img: ImageLike, cond: Conditioning, tile: int | str | None = "auto", tile_overlap: int = 16,
                tta: bool = False, precision: str | None = None,
                progress: Callable[[int], None] | None = None) -> ImageLike:
        """Restore `img` with a given conditioning (see `condition`); options and output as for `upscale`."""
        return _like_input(img, self._run(_to_loaded(img), cond, tile, tile_overlap, tta, precision, progress))

    def upscale(self, img: ImageLike, tile: int | str | None = "auto", tile_overlap: int = 16, tta: bool = False,
                precision: str | None = None, do: Mapping[str, float] | None = None,
                conditioning: Conditioning | None = None,
                progress: Callable[[int], None] | None = None) -> ImageLike:
        """Super-resolve an image by `self.scale`.

        Args:
            img: PIL image (returns PIL), numpy HxW/HxWxC uint8/uint16 array
                (returns the same layout and dtype) or `LoadedImage` (returns one).
                Greyscale stays greyscale, alpha is upscaled separately (bicubic),
                16-bit stays 16-bit.
            tile: LR tile side in pixels, "auto" (from available memory; the
                whole image when it fits) or None (never tile).
            tile_overlap: overlap between tiles in LR pixels (blended, no seams).
            tta: x8 self-ensemble (flips and 90-degree rotations, averaged).
            precision: "fp32" or "bf16" (autocast; falls back to fp32 with a
                warning when a probe tile shows it is unsafe). Default: the
                precision given to `load`.
            do: interventions {factor: physical value}, e.g. {"noise": 0}.
            conditioning: precomputed conditioning (e.g. of the larger image a
                crop comes from); `do` is applied on top of it.
            progress: called with 1 after each tile.
        """
        src = _to_loaded(img)
        cond = self.intervene(conditioning, do) if conditioning is not None else self.condition(src, do=do)
        return _like_input(img, self._run(src, cond, tile, tile_overlap, tta, precision, progress))

    def do(self, img: ImageLike, **factors: float) -> ImageLike:
        """Restoration under do(factor = value), e.g. ``model.do(img, noise=5, jpeg=60)``.

        do(factor = v) sets the degradation the restorer is told caused the image: it replaces
        the posterior's estimate of that factor, and the structured prior's do() recomputes the
        rest of Z (parents cut, abducted noise kept). It works as a strength control, like
        FFDNet's noise level or FBCNN's quality factor: noise below the true level keeps grain,
        above it smooths; a lower JPEG quality deblocks harder; more blur sharpens more.
        Without do, the posterior's estimate is used (blind mode).
        """
        if not factors:
            raise ValueError("do() needs at least one factor=value, e.g. noise=0")
        return self.upscale(img, do=factors)

    def samples(self, img: ImageLike, n: int = 3, seed: int = 0, **options: Any) -> list[ImageLike]:
        """`n` counterfactual restorations, each with Z sampled from the posterior q(Z | Y).

        Extra keyword options are those of `restore` (tile, tta, precision, ...).
        """
        src = _to_loaded(img)
        generator = torch.Generator().manual_seed(seed)
        return [self.restore(img, self.condition(src, generator=generator), **options) for _ in range(n)]

    @torch.no_grad()
    def analyze(self, img: ImageLike) -> FactorReport:
        """Estimate the named degradation factors with standard deviations from the posterior covariance."""
        lr = _as_tensor(_to_loaded(img), self.device)
        q = self.model.infer_z(lr)
        if q is None:
            raise ValueError("this model has no degradation latent Z (plain model): nothing to analyze")
        mean = q.mean[0].double().cpu()
        cov = q.covariance_matrix[0].double().cpu()
        span = scale_factors().double()
        values = denormalise(mean[:N_NAMED])
        cov_named = cov[:N_NAMED, :N_NAMED] * torch.outer(span, span)
        std = cov_named.diagonal().sqrt()
        corr = cov_named / torch.outer(std, std)
        factors = {
            f.name: FactorEstimate(f.name, _LABELS.get(f.name, f.name), _UNITS.get(f.name, f.unit),
                                   float(min(max(values[i].item(), f.low), f.high)), float(std[i]), f.low, f.high)
            for i, f in enumerate(FACTORS)
        }
        return FactorReport(factors, cov_named.numpy(), corr.numpy(), mean.numpy(), cov.numpy())


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def load(name_or_path: str | Path = "x4", device: str | torch.device = "cpu", precision: str = "fp32") -> Upscaler:
    """Load a bundled model ("x2", "x3", "x4") or a checkpoint written by `save_pretrained`.

    Raises FileNotFoundError (missing files) or ValueError (not a causalsr
    checkpoint, or weights that do not match its architecture), each with a
    one-line message.
    """
    from causalsr.models.causalsr import load_pretrained

    stem = bundled.resolve(name_or_path)
    model, meta = load_pretrained(stem, map_location=str(device))
    return Upscaler(model, meta, device=device, precision=precision)


def load_for_scale(model: str | Path | None = None, scale: int | None = None, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> Upscaler:
    """`load` with the command line's --model/--scale rules.

    No `model`: the bundled model of `scale` (default x4). With both, the
    checkpoint must be of that scale, else a one-line ValueError.
    """
    name = str(model) if model is not None else f"x{scale or 4}"
    up = load(name, device=device, precision=precision)
    if scale is not None and up.scale != scale:
        raise ValueError(f"{name} is an x{up.scale} model, not x{scale}: drop --scale or pick an x{scale} model")
    return up


__all__ = ["load", "load_for_scale", "normalise_do", "Upscaler", "Conditioning", "FactorReport", "FactorEstimate",
           "PRECISIONS"]
