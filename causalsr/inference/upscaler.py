"""`Upscaler`: a loaded model with image-level inference (upscale, analyze, do, samples).

Conditioning is computed once per image: the degradation posterior q(Z | Y)
and the semantic context C both see the whole LR image (the posterior analyses
full-resolution crops of a large image, the encoder a resized copy), and every
tile is restored with that same Z and C. The context map is sampled at each
tile's position (`ctx_box`), so tiles agree with an untiled run.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from causalsr.data.imageio import LoadedImage
from causalsr.inference.conditioning import Conditioning, normalise_do
from causalsr.inference.devices import free_gpu_memory, is_oom, release_cached_memory, resolve_device
from causalsr.inference.images import ImageLike, as_tensor, like_input, to_grey, to_loaded, upscale_alpha
from causalsr.inference.jpeg_evidence import check_jpeg_evidence, container_of, evidence_do
from causalsr.inference.report import FactorReport, factor_report
from causalsr.inference.tiling import Box, auto_tile_size, tiled_apply
from causalsr.inference.tta import TTA, inverse, transform, transform_box, transform_tokens

if TYPE_CHECKING:
    from causalsr.models.causalsr import CausalSR

logger = logging.getLogger("causalsr")

PRECISIONS = ("fp32", "bf16", "fp16")
HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BF16_TOLERANCE = 0.05
"""Largest |bf16 - fp32| (or |fp16 - fp32|) accepted on the probe tile before falling back to fp32."""
MIN_RETRY_TILE = 32
"""Out of memory: tiles are halved down to this side (LR pixels) before giving up."""
GPU_MAX_TILE = 1024
"""Largest automatic tile side on a GPU (the CPU's is `tiling.MAX_TILE`)."""

_FULL_BOX: Box = (0.0, 0.0, 1.0, 1.0)


def check_precision(precision: str) -> None:
    """ValueError unless `precision` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


class Upscaler:
    """A loaded CausalSR model with image-level inference: upscale, analyze, intervene.

    Args:
        model: a `causalsr.models.causalsr.CausalSR` (put in eval mode here).
        meta: the checkpoint's metadata (from its `.json`).
        device: torch device for inference: a `torch.device` or a name `causalsr.inference.devices.resolve_device`
            takes ("auto", "cpu", "cuda", "cuda:1", "mps"); an absent device is a one-line ValueError.
        precision: default precision for `upscale`, "fp32", "bf16" or "fp16" (CUDA and MPS; fp32 elsewhere).
    """

    def __init__(self, model: CausalSR, meta: Mapping[str, Any] | None = None, device: str | torch.device = "cpu",
                 precision: str = "fp32"):
        check_precision(precision)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.to(self.device).eval()
        self.meta = dict(meta or {})
        self.precision = precision
        self._bytes_per_px: float | None = None
        self._tile_cap: int | None = None  # the tile that fit after an out-of-memory retry

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
        lr = img if isinstance(img, torch.Tensor) else as_tensor(to_loaded(img), self.device)
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

    def _tile_fn(self, cond: Conditioning, tta: bool,
                 half: torch.dtype | None) -> Callable[[torch.Tensor, Box], torch.Tensor]:
        """The tile function; `half` (bfloat16 or float16) runs it under autocast, a non-finite tile again in fp32."""
        token_views = {t: transform_tokens(cond.tokens, *t) for t in (TTA if tta else TTA[:1])}

        def run(tile: torch.Tensor, box: Box, use_half: bool) -> torch.Tensor:
            ctx = (torch.autocast(device_type=self.device.type, dtype=half) if use_half and half is not None
                   else contextlib.nullcontext())
            with torch.no_grad(), ctx:
                if not tta:
                    return self._restore_tile(tile, cond, cond.tokens, box).float()
                acc = None
                for t, tokens in token_views.items():
                    out = inverse(self._restore_tile(transform(tile, *t), cond, tokens, transform_box(box, *t)), *t)
                    acc = out.float() if acc is None else acc + out.float()
                assert acc is not None  # token_views holds at least the identity view
                return acc / len(token_views)

        def fn(tile: torch.Tensor, box: Box) -> torch.Tensor:
            if half is None:
                return run(tile, box, False)
            out = run(tile, box, True)
            if not torch.isfinite(out).all():
                logger.warning("causalsr: %s gave non-finite values on a tile; recomputed it in fp32",
                               "bf16" if half == torch.bfloat16 else "fp16")
                out = run(tile, box, False)
            return out

        return fn

    def _half_dtype(self, precision: str, lr: torch.Tensor, cond: Conditioning) -> torch.dtype | None:
        """The autocast dtype for `precision` if it is safe here (`_half_is_safe`), else None (fp32)."""
        if precision == "fp32":
            return None
        if precision == "fp16" and self.device.type not in ("cuda", "mps"):
            logger.warning("causalsr: fp16 runs on a GPU (CUDA or MPS), not on %s; using fp32", self.device.type)
            return None
        dtype = HALF_DTYPES[precision]
        return dtype if self._half_is_safe(lr, cond, precision, dtype) else None

    def _half_is_safe(self, lr: torch.Tensor, cond: Conditioning, name: str, dtype: torch.dtype) -> bool:
        """Compare bf16/fp16 with fp32 on a small centre tile; warn (one line) and refuse if unsafe."""
        _, _, h, w = lr.shape
        ph, pw = min(h, 48), min(w, 48)
        y, x = (h - ph) // 2, (w - pw) // 2
        box = (y / h, x / w, (y + ph) / h, (x + pw) / w)
        probe = lr[..., y:y + ph, x:x + pw]
        ref = self._tile_fn(cond, False, None)(probe, box)
        try:
            with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=dtype):
                test = self._restore_tile(probe, cond, cond.tokens, box).float()
        except RuntimeError as e:  # half kernels missing on this device
            if is_oom(e):
                raise
            logger.warning("causalsr: %s is not supported here (%s); using fp32", name, str(e).splitlines()[0])
            return False
        if not torch.isfinite(test).all():
            logger.warning("causalsr: %s gives non-finite values on this image; using fp32", name)
            return False
        err = (test - ref).abs().max().item()
        if err > BF16_TOLERANCE:
            logger.warning("causalsr: %s differs from fp32 by %.3f (> %.2f) on a probe tile; using fp32",
                           name, err, BF16_TOLERANCE)
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
        """The tile side actually used: None (whole image), an int, or "auto".

        "auto" sizes tiles from the memory free for them: half the free memory of a CUDA device (up to
        `GPU_MAX_TILE`), else `tiling.auto_tile_size`'s share of the available RAM; never above a tile that
        fitted after an out-of-memory retry on an earlier image.
        """
        if tile is None:
            return None
        if tile == "auto":
            free = free_gpu_memory(self.device)
            if free is None:
                side = auto_tile_size(self.bytes_per_lr_pixel())
            else:
                side = auto_tile_size(self.bytes_per_lr_pixel(), free // 2, max_tile=GPU_MAX_TILE)
            if self._tile_cap is not None:
                side = min(side, self._tile_cap)
            return None if max(shape) <= side else side
        tile = int(tile)
        if tile < 8:
            raise ValueError(f"tile must be at least 8 LR pixels, got {tile}")
        return tile

    def _run(self, src: LoadedImage, cond: Conditioning, tile: int | str | None, tile_overlap: int, tta: bool,
             precision: str | None, progress: Callable[[int], None] | None) -> LoadedImage:
        precision = precision or self.precision
        check_precision(precision)
        lr = as_tensor(src, self.device)
        h, w = lr.shape[-2:]
        auto = tile == "auto"
        tile = self.resolve_tile(tile, (h, w))
        if tile is not None and tile >= max(h, w):
            tile = None
        if tile is not None and 2 * tile_overlap > tile:
            if not auto:
                raise ValueError(f"tile_overlap {tile_overlap} is more than half the tile size {tile}")
            tile_overlap = tile // 2  # an automatic tile capped after an out-of-memory retry
        half = self._half_dtype(precision, lr, cond)
        out = np.empty((h * self.scale, w * self.scale, 3), src.rgb.dtype)
        self._tiled(self._tile_fn(cond, tta, half), lr, tile, tile_overlap, out, progress)
        del lr
        if src.grey:
            out = to_grey(out)
        alpha = upscale_alpha(src.alpha, self.scale) if src.alpha is not None else None
        return LoadedImage(out, alpha, src.bit_depth, src.grey, src.path, src.icc_profile, src.exif)

    def _tiled(self, fn: Callable[[torch.Tensor, Box], torch.Tensor], lr: torch.Tensor, tile: int | None,
               tile_overlap: int, out: np.ndarray, progress: Callable[[int], None] | None) -> None:
        """`tiled_apply` into `out`; on out-of-memory the tile is halved and the image redone, down to
        `MIN_RETRY_TILE`, then a one-line MemoryError. (Tiles done before a retry were already reported
        to `progress`.)"""
        while True:
            try:
                tiled_apply(fn, lr, self.scale, tile, tile_overlap if tile is not None else 0, out, progress)
                return
            except RuntimeError as e:
                if not is_oom(e):
                    raise
            release_cached_memory(self.device)
            side = max(lr.shape[-2:]) if tile is None else tile
            if side <= MIN_RETRY_TILE:
                hint = "free memory" + (", or use --device cpu" if self.device.type != "cpu" else "")
                raise MemoryError(f"out of memory on {self.device} even with {side}-pixel tiles; {hint}")
            tile = max(side // 2, MIN_RETRY_TILE)
            tile_overlap = min(tile_overlap, tile // 2)
            self._tile_cap = tile
            logger.warning("causalsr: out of memory on %s with %s; retrying with %d-pixel tiles", self.device,
                           "the whole image" if side == max(lr.shape[-2:]) else f"{side}-pixel tiles", tile)

    def restore(self, img: ImageLike, cond: Conditioning, tile: int | str | None = "auto", tile_overlap: int = 16,
                tta: bool = False, precision: str | None = None,
                progress: Callable[[int], None] | None = None) -> ImageLike:
        """Restore `img` with a given conditioning (see `condition`); options and output as for `upscale`."""
        return like_input(img, self._run(to_loaded(img), cond, tile, tile_overlap, tta, precision, progress))

    def upscale(self, img: ImageLike, tile: int | str | None = "auto", tile_overlap: int = 16, tta: bool = False,
                precision: str | None = None, do: Mapping[str, float] | None = None,
                conditioning: Conditioning | None = None,
                progress: Callable[[int], None] | None = None, jpeg_evidence: str = "container") -> ImageLike:
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
            precision: "fp32", "bf16" or "fp16" (autocast; falls back to fp32
                with a warning when a probe tile shows it is unsafe; fp16 only
                on CUDA and MPS). Default: the precision given to `load`.
            do: interventions {factor: physical value}, e.g. {"noise": 0}.
            conditioning: precomputed conditioning (e.g. of the larger image a
                crop comes from); `do` is applied on top of it.
            progress: called with 1 after each tile.
            jpeg_evidence: "container" (default): when `img` comes from a JPEG file with
                standard tables (a PIL image as `Image.open` returned it, or a `LoadedImage`
                read from the file) and `do` sets no jpeg, the restorer is told
                min(posterior's JPEG quality, the file's stated quality)
                (`causalsr.inference.jpeg_evidence`); "none": the pixels alone. Not used
                with `conditioning`.
        """
        check_jpeg_evidence(jpeg_evidence)
        src = to_loaded(img)
        if conditioning is not None:
            cond = self.intervene(conditioning, do)
        else:
            cond = self.condition(src)
            told = dict(do or {})
            if jpeg_evidence == "container" and "jpeg" not in told and cond.posterior is not None:
                told.update(evidence_do(self._report(cond.posterior).factors["jpeg"].value, container_of(img)))
            cond = self.intervene(cond, told)
        return like_input(img, self._run(src, cond, tile, tile_overlap, tta, precision, progress))

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
        src = to_loaded(img)
        generator = torch.Generator().manual_seed(seed)
        return [self.restore(img, self.condition(src, generator=generator), **options) for _ in range(n)]

    @torch.no_grad()
    def analyze(self, img: ImageLike) -> FactorReport:
        """Estimate the named degradation factors with standard deviations from the posterior covariance.

        For a JPEG file (a PIL image as `Image.open` returned it, or a `LoadedImage` read from a
        file) the report also carries the quality the file's tables state (`FactorReport.container`).
        """
        lr = as_tensor(to_loaded(img), self.device)
        q = self.model.infer_z(lr)
        if q is None:
            raise ValueError("this model has no degradation latent Z (plain model): nothing to analyze")
        report = self._report(q)
        report.container = container_of(img)
        return report

    def _report(self, q: torch.distributions.MultivariateNormal) -> FactorReport:
        return factor_report(q, self.model.cfg.posterior_sd_scale, self.model.cfg.posterior_mean_knots)
