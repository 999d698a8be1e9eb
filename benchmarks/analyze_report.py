"""Markdown tables and the reliability figure of an `analyze_accuracy.py --grid` JSON.

    python3 benchmarks/analyze_accuracy.py --tables benchmarks/results/analyze_accuracy_x4.json
"""
from __future__ import annotations

import numpy as np

from causalsr.factors import FACTOR_NAMES

Z90 = 1.6448536269514722  # two-sided 90% Gaussian interval: +-Z90 sd
BASELINES = {"noise": ("immerkaer", "wavelet_mad", "chen_pca"), "jpeg": ("ghost",)}


def _fmt(d: dict | None, cov: bool = False) -> str:
    if d is None:
        return ""
    s = f"{d['mae']:.2f} / {d['bias']:+.2f}"
    return s + f" / {100 * d['coverage90']:.0f}%" if cov else s


def grid_tables(doc: dict) -> str:
    """Markdown tables of a --grid JSON: per dataset set and sweep, then the criteria."""
    lines = []
    for ds, res in doc["results"].items():
        rows = res["settings"]
        lines.append(f"\n#### {ds}: MAE / bias / 90% coverage (analyze), MAE / bias (baselines)\n")
        for sweep, f in (("noise", "noise"), ("jpeg", "jpeg"), ("jpeg_crop", "jpeg"), ("blur", "blur")):
            base = BASELINES.get(f, ())
            lines.append(f"| {sweep} (true {f}) | analyze mean | analyze | " + " | ".join(base)
                         + (" |" if base else "|"))
            lines.append("|---|---|---|" + "---|" * len(base))
            for r in rows.values():
                if r["sweep"] == sweep:
                    lvl = "none" if f == "jpeg" and r["level"] == 100 else f"{r['level']:g}"
                    cells = [lvl, f"{r['analyze'][f]['mean']:.2f}", _fmt(r["analyze"][f], True)]
                    cells += [_fmt(r.get(b)) for b in base]  # get: JSONs from before a baseline existed
                    lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        comp = next(r for r in rows.values() if r["sweep"] == "compound")
        lines.append(f"| {comp['spec']} | true | analyze mean | analyze | baselines |")
        lines.append("|---|---|---|---|---|")
        for f in FACTOR_NAMES:
            base = ", ".join(f"{b} {_fmt(comp[b])}" for b in BASELINES.get(f, ()) if b in comp)
            lines.append(f"| {f} | {comp['true'][f]:g} | {comp['analyze'][f]['mean']:.2f} | "
                         f"{_fmt(comp['analyze'][f], True)} | {base} |")
        c = res["criteria"]
        lines.append(f"\n{ds} criteria:")
        lines += [f"- {k}: {_short(v)}" for k, v in c.items()]
    return "\n".join(lines)


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, dict):
        return "(" + ", ".join(f"{k} {_short(x)}" for k, x in v.items()) + ")"
    return str(v)


FIGURE_SWEEPS = {"blur": (("blur", (0, 90, 200)),),
                 "noise": (("noise", (0, 90, 200)),),
                 "jpeg": (("jpeg", (0, 90, 200)), ("jpeg_crop", (210, 60, 40)))}


def calibration_figure(doc: dict, path: str) -> None:
    """Estimated vs true per factor, each image's reading with its 90% interval (Pillow drawing, no matplotlib).

    One panel per factor over its own sweep (all data sets of the JSON pooled); JPEG shows the
    aligned (blue) and the (3, 5)-cropped (red) sweeps. Each level's readings are sorted and
    spread sideways around the true level, intervals in a light tint, readings as dots; the grey
    line is estimate = truth.
    """
    from PIL import Image, ImageDraw, ImageFont

    size, margin, gap = 360, 56, 24
    img = Image.new("RGB", (3 * (size + margin) + gap + margin, size + 2 * margin), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=13)
    sets = list(doc["per_image"])
    for k, (f, sweeps) in enumerate(FIGURE_SWEEPS.items()):
        fi = FACTOR_NAMES.index(f)
        lo, hi = 0.0, {"blur": 3.5, "noise": 55.0, "jpeg": 105.0}[f]
        x0, y0 = margin + k * (size + margin) + gap, margin

        def px(v: float, x0: int = x0, lo: float = lo, hi: float = hi) -> float:
            return x0 + (v - lo) / (hi - lo) * size

        def py(v: float, y0: int = y0, lo: float = lo, hi: float = hi) -> float:
            return y0 + size - (min(max(v, lo), hi) - lo) / (hi - lo) * size

        draw.rectangle([x0, y0, x0 + size, y0 + size], outline="black")
        draw.line([px(lo), py(lo), px(hi), py(hi)], fill=(170, 170, 170), width=1)
        for t in {"blur": np.arange(0, 3.6, 0.5), "noise": np.arange(0, 51, 10), "jpeg": np.arange(0, 101, 20)}[f]:
            draw.line([px(t), y0 + size, px(t), y0 + size + 4], fill="black")
            draw.text((px(t) - 10, y0 + size + 6), f"{t:g}", fill="black", font=font)
            draw.line([x0 - 4, py(t), x0, py(t)], fill="black")
            draw.text((x0 - 34, py(t) - 7), f"{t:g}", fill="black", font=font)
        title = {"blur": "blur sigma (HR px)", "noise": "noise sigma (0-255)", "jpeg": "JPEG quality"}[f]
        draw.text((x0, y0 - 20), f"{title}: estimate and 90% interval vs true", fill="black", font=font)
        width = 0.06 * (hi - lo)
        for s_i, (sweep, colour) in enumerate(sweeps):
            recs = [(name, r) for ds in sets for name, rs in doc["per_image"][ds].items()
                    if doc["results"][ds]["settings"][name]["sweep"] == sweep for r in rs]
            by_level: dict[float, list] = {}
            for _, r in recs:
                by_level.setdefault(r["truth"][fi], []).append(r)
            tint = tuple(int(c + 0.6 * (255 - c)) for c in colour)
            for t, rs in by_level.items():
                rs = sorted(rs, key=lambda r: r["value"][fi])
                xs = [px(t + (j / max(len(rs) - 1, 1) - 0.5) * width + (s_i - (len(sweeps) - 1) / 2) * width * 1.2)
                      for j in range(len(rs))]
                for x, r in zip(xs, rs):
                    v, sd = r["value"][fi], r["sd"][fi]
                    draw.line([x, py(v - Z90 * sd), x, py(v + Z90 * sd)], fill=tint, width=1)
                for x, r in zip(xs, rs):
                    draw.ellipse([x - 1.5, py(r["value"][fi]) - 1.5, x + 1.5, py(r["value"][fi]) + 1.5], fill=colour)
        draw.text((x0 + size // 2 - 20, y0 + size + 22), "true", fill="black", font=font)
    n = {ds: doc["meta"]["timing"][ds]["images"] for ds in sets}
    note = (f"bundled {doc['meta']['model']}, " + ", ".join(f"{ds} {k} images" for ds, k in n.items())
            + "; JPEG: blue aligned, red after a (3, 5) crop")
    draw.text((gap + margin, img.height - 20), note, fill="black", font=font)
    atomic_path_save(img, path)


def atomic_path_save(img, path: str) -> None:
    from causalsr.atomic import atomic_path

    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


__all__ = ["BASELINES", "Z90", "calibration_figure", "grid_tables"]
