"""The reliability strips of `analyze --explain`: what the estimate says, and how far to trust it.

One strip per named factor: the estimate and its 90% interval (value +- 1.645 sd, the report's
"value +- sd" read as a Gaussian) drawn on the factor's axis, beside how that factor's 90% interval
covered the true values on a benchmark, with the benchmark's mean absolute error.

The benchmark numbers are not in the model file: a model file records no measurement of
`analyze`, and the numbers change whenever its posterior is re-fitted. They come from a
`benchmarks/analyze_accuracy.py --grid` JSON given as `analyze --reliability JSON` (for the bundled
x4, `benchmarks/results/analyze_accuracy_x4.json`), whose sets, image count, commit and date the
strips print. Without one the strips show the estimate alone and say that no record was given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from causalsr.inference.report import FactorEstimate, FactorReport

Z90 = 1.6448536269514722  # two-sided 90% Gaussian interval: +-Z90 sd
HEADER_HEIGHT = 18
STRIP_HEIGHT = 50
MIN_WIDTH = 900  # below this the strip's texts do not fit
AXIS_END = 0.55  # the factor's axis takes the left 55% of the strip, the benchmark the rest
INTERVAL_COLOUR = (120, 170, 225)
ESTIMATE_COLOUR = (20, 40, 130)
COVERAGE_COLOUR = (90, 160, 90)
TARGET_COVERAGE = (0.85, 0.95)  # issue 17's "calibrated" band for a 90% interval
_MAE_KEYS = {"blur": ("blur_mae_sigma_0.5_3", "sigma 0.5-3, noise-free"),
             "noise": ("noise_mae_sigma_5_50", "sigma 5-50"),
             "jpeg": ("jpeg_mae_q_10_90", "quality 10-90, aligned grid")}
_SWEEPS = {"blur": "sigma 0-3", "noise": "sigma 0-50", "jpeg": "quality 10-100, aligned and cropped"}
"""What each factor's coverage is over: its own sweeps of the grid (`coverage90` ... `own_sweep`)."""


@dataclass(frozen=True)
class FactorReliability:
    """One factor's benchmark record: 90% coverage over `coverage_over` and the MAE over `mae_over`."""

    coverage90: float
    coverage_over: str
    mae: float
    mae_over: str


@dataclass(frozen=True)
class Reliability:
    """The benchmark records of every named factor and a line saying where they come from."""

    factors: dict[str, FactorReliability]
    source: str


def reliability_from_grid(doc: dict[str, Any], scale: int) -> Reliability:
    """The `Reliability` an `analyze_accuracy.py --grid` JSON states (all its sets pooled, when several).

    ValueError when `doc` is not such a JSON or was measured at another scale than `scale`.
    """
    try:
        meta, results = doc["meta"], doc["results"]
        res = results["all"] if "all" in results else next(iter(results.values()))
        crit = res["criteria"]
        factors = {f: FactorReliability(float(crit["coverage90"][f]["own_sweep"]), _SWEEPS[f],
                                        float(crit[key]["analyze"]), over) for f, (key, over) in _MAE_KEYS.items()}
        images = sum(int(t["images"]) for t in meta["timing"].values())
        source = (f"{' + '.join(meta['timing'])}, {images} images, model {meta['model']} "
                  f"at commit {str(meta['commit'])[:7]}, {str(meta['date'])[:10]}")
    except (KeyError, TypeError, ValueError, StopIteration) as e:
        raise ValueError(f"not an analyze_accuracy.py --grid JSON (missing {e})") from None
    if int(meta.get("scale", scale)) != scale:
        raise ValueError(f"the reliability JSON was measured on an x{meta['scale']} model, this one is x{scale}")
    return Reliability(factors, source)


def interval_px(est: FactorEstimate, left: float, right: float) -> tuple[float, float, float]:
    """Pixel x of (interval low end, estimate, interval high end) on an axis from `left` (est.low) to `right`.

    The interval is clipped to the axis: a factor's estimate never leaves its range.
    """
    def px(v: float) -> float:
        return left + (min(max(v, est.low), est.high) - est.low) / (est.high - est.low) * (right - left)

    return px(est.value - Z90 * est.std), px(est.value), px(est.value + Z90 * est.std)


def _axis(draw, est: FactorEstimate, top: int, left: int, right: int) -> None:
    y = top + 30
    lo, mid, hi = interval_px(est, left, right)
    draw.line([left, y, right, y], fill="black")
    for v in (est.low, (est.low + est.high) / 2, est.high):
        x = left + (v - est.low) / (est.high - est.low) * (right - left)
        draw.line([x, y - 3, x, y + 3], fill="black")
        draw.text((x - 6, y + 5), f"{v:g}", fill="black")
    draw.rectangle([lo, y - 5, hi, y + 5], fill=INTERVAL_COLOUR)
    draw.rectangle([mid - 1, y - 8, mid + 1, y + 8], fill=ESTIMATE_COLOUR)
    draw.text((left, top + 4), f"{est}; 90% interval {est.value - Z90 * est.std:.1f} to "
              f"{est.value + Z90 * est.std:.1f}", fill="black")


def _benchmark(draw, rec: FactorReliability | None, top: int, left: int, right: int) -> None:
    if rec is None:
        draw.text((left, top + 4), "benchmark: no record given (analyze --reliability JSON)", fill="black")
        return
    lo_pct, hi_pct = (100 * t for t in TARGET_COVERAGE)
    draw.text((left, top + 4), f"benchmark: 90% interval covered {100 * rec.coverage90:.0f}% of truths "
              f"({rec.coverage_over})", fill="black")
    draw.text((left, top + 16), f"mean abs. error {rec.mae:.2f} ({rec.mae_over}); "
              f"calibrated coverage: {lo_pct:.0f}-{hi_pct:.0f}% (ticks)", fill="black")
    y, x0, x1 = top + 38, left + 14, right - 30
    draw.text((left, y - 6), "0", fill="black")
    draw.text((x1 + 4, y - 6), "100%", fill="black")
    draw.rectangle([x0, y - 4, x1, y + 4], outline="black")
    draw.rectangle([x0, y - 4, x0 + rec.coverage90 * (x1 - x0), y + 4], fill=COVERAGE_COLOUR)
    for t in TARGET_COVERAGE:  # the calibrated band's ends
        draw.line([x0 + t * (x1 - x0), y - 7, x0 + t * (x1 - x0), y + 7], fill="black")


def reliability_strips(report: FactorReport, reliability: Reliability | None, width: int) -> Image.Image:
    """A header line and one strip per factor of `report`, `width` (at least `MIN_WIDTH`) pixels wide."""
    from PIL import Image, ImageDraw

    width = max(width, MIN_WIDTH)
    img = Image.new("RGB", (width, HEADER_HEIGHT + STRIP_HEIGHT * len(report.factors)), "white")
    draw = ImageDraw.Draw(img)
    where = reliability.source if reliability is not None else "none given"
    draw.text((4, 3), f"reliability: estimate (dark) and 90% interval (light) per factor; benchmark: {where}",
              fill="black")
    split = int(AXIS_END * width)
    for i, (name, est) in enumerate(report.factors.items()):
        top = HEADER_HEIGHT + i * STRIP_HEIGHT
        draw.line([0, top, width, top], fill=(200, 200, 200))
        _axis(draw, est, top, 12, split - 24)
        rec = reliability.factors.get(name) if reliability is not None else None
        _benchmark(draw, rec, top, split, width - 12)
    return img


def with_strips(panel: Image.Image, strips: Image.Image) -> Image.Image:
    """`panel` with `strips` below it, on a white canvas as wide as the wider of the two."""
    from PIL import Image

    out = Image.new("RGB", (max(panel.width, strips.width), panel.height + strips.height), "white")
    out.paste(panel, (0, 0))
    out.paste(strips, (0, panel.height))
    return out
