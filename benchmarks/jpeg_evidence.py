#!/usr/bin/env python3
"""Does telling the restorer the JPEG file's container quality help `upscale`? (issue 17)

A JPEG file states the quality of its last save (`causalsr.data.jpeg_container`). An image
saved at quality q carries at least q's artefacts (an earlier, coarser save only adds to
them), so the container quality bounds the effective quality from above. The rule measured:

    told jpeg = min(posterior estimate, container quality)        (rule "min")

when the file is a JPEG with standard IJG tables (`exact`); when the posterior already reads
at or below the container quality the rule changes nothing (the blind restoration is used).
Rule "interval" tells the container quality only when it lies below the posterior's 90%
interval (estimate - 1.645 sd): when the file contradicts the posterior, not when it nudges it.

For every image of each set: HR (cropped to a multiple of the scale) -> MATLAB bicubic
downscale -> saved by Pillow as a JPEG file (in memory, 4:2:0) at each chain of qualities
(`30` one save; `20>90` saved at 20, decoded, saved again at 90; `30>c>90` saved at 30, decoded,
cropped by (3, 5) LR pixels as `analyze_accuracy.py` crops, so the first save's 8x8 grid no
longer starts at the corner, then saved at 90) -> restored blind, with the rule, and told the
true effective quality (the chain's lowest, an oracle) -> PSNR-Y against the HR image (cropped
alike; crop border = scale, the repo's `psnr`).

    OMP_NUM_THREADS=1 python3 benchmarks/jpeg_evidence.py --model x4 --datasets Set5 Set14 BSD100 \
        --json benchmarks/results/jpeg_evidence_x4.json
    python3 benchmarks/jpeg_evidence.py --table benchmarks/results/jpeg_evidence_x4.json --docs docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from doc_blocks import replace_block
from PIL import Image

import causalsr
from causalsr.atomic import atomic_write_text
from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.data.imresize import crop_to_multiple
from causalsr.data.jpeg_container import container_quality
from causalsr.evaluation.harness import load_hr_uint8, run_meta
from causalsr.inference.jpeg_evidence import container_of, evidence_do
from causalsr.metrics.psnr_ssim import psnr

CHAINS = ("10", "30", "50", "70", "90", "20>90", "30>c>90", "50>c>75")
CROP = (3, 5)  # LR rows off the top, columns off the left: analyze_accuracy.py's crop
RULES = ("min", "interval")
Z90 = 1.6448536269514722  # the report's 90% interval: value +- Z90 sd


def jpeg_file(rgb: np.ndarray, chain: str) -> tuple[Image.Image, tuple[int, int]]:
    """`rgb` put through `chain` (Pillow saves at each quality, `c` a crop); the last file opened
    (its tables kept) and the LR rows and columns cropped off the top and left."""
    im, off = Image.fromarray(rgb), (0, 0)
    for step in chain.split(">"):
        if step == "c":
            im = im.crop((CROP[1], CROP[0], im.width, im.height))
            off = (off[0] + CROP[0], off[1] + CROP[1])
            continue
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=int(step))
        buf.seek(0)
        im = Image.open(buf)
    return im, off


def true_quality(chain: str) -> float:
    """The chain's effective quality: its coarsest save."""
    return float(min(int(q) for q in chain.split(">") if q != "c"))


def rule_quality(rule: str, estimate: float, sd: float, file: Image.Image) -> float | None:
    """The quality `rule` tells the restorer, or None when it changes nothing (blind).

    "min": `upscale --jpeg-evidence container`'s rule (`causalsr.inference.jpeg_evidence`), the
    container quality whenever it is below the posterior estimate. "interval": only when it is
    below the estimate's 90% interval (estimate - 1.645 sd), i.e. when the file's evidence
    contradicts the posterior rather than nudging it.
    """
    if rule == "min":
        return evidence_do(estimate, container_of(file)).get("jpeg")
    cq = container_quality(file)
    return float(cq.quality) if cq is not None and cq.exact and cq.quality < estimate - Z90 * sd else None


def measure_image(up, hr: np.ndarray, chains: tuple[str, ...]) -> dict[str, dict]:
    """Per chain: container and posterior readings, each rule's told quality and the PSNRs."""
    s = up.scale
    lr = degrade_numpy_uint8(hr, parse_degradation("bicubic", s))
    out = {}
    for chain in chains:
        file, (dy, dx) = jpeg_file(lr, chain)
        rgb = np.asarray(file.convert("RGB"))
        ref = hr[dy * s:, dx * s:]
        cond = up.condition(rgb)
        report = up.analyze(file)
        est, sd = report.factors["jpeg"].value, report.factors["jpeg"].std
        truth = true_quality(chain)
        blind = psnr(ref, up.restore(rgb, cond), crop=s)
        told: dict[str, float | None] = {"oracle": truth, **{r: rule_quality(r, est, sd, file) for r in RULES}}
        rec = {"true_quality": truth, "container": report.container.to_dict() if report.container else None,
               "posterior": est, "posterior_sd": sd, "told": told, "psnr": {"blind": blind}}
        for name, q in told.items():
            rec["psnr"][name] = blind if q is None else psnr(ref, up.restore(rgb, up.intervene(cond, {"jpeg": q})),
                                                             crop=s)
        out[chain] = rec
    return out


def summarise(rows: list[dict]) -> dict:
    """Means over images of one (set, chain): posterior reading, PSNRs; per rule how often it fired and
    its PSNR minus blind (mean, min, max)."""
    blind = np.array([x["psnr"]["blind"] for x in rows])
    out: dict = {"images": len(rows), "posterior_mean": float(np.mean([x["posterior"] for x in rows])),
                 "psnr_blind": float(blind.mean())}
    for name in ("oracle", *RULES):
        d = np.array([x["psnr"][name] for x in rows]) - blind
        out[name] = {"psnr": float(blind.mean() + d.mean()), "minus_blind": float(d.mean()),
                     "minus_blind_min": float(d.min()), "minus_blind_max": float(d.max()),
                     "fired": sum(x["told"][name] is not None for x in rows)}
    return out


def pooled(per_image: dict) -> dict:
    """Per chain, `summarise` over the images of every set together."""
    rows: dict[str, list[dict]] = {}
    for images in per_image.values():
        for chains in images.values():
            for chain, rec in chains.items():
                rows.setdefault(chain, []).append(rec)
    return {chain: summarise(r) for chain, r in rows.items()}


def table(doc: dict) -> str:
    """Markdown: one row per (set, chain), then the sets pooled when there are several; each rule as
    how often it fired, PSNR, minus blind (min / max)."""
    results = dict(doc["results"])
    if len(results) > 1:
        results["all"] = pooled(doc["per_image"])
    head = " | ".join(f"rule {r}: fired, PSNR, - blind (min / max)" for r in RULES)
    lines = [f"| set | saves | posterior reads | blind | {head} | told the truth |",
             "|---|---|---|---|" + "---|" * len(RULES) + "---|"]
    for ds, chains in results.items():
        for chain, m in chains.items():
            saves = chain.replace(">c>", ", crop (3, 5), ").replace(">", " then ")
            cells = [f"{m[r]['fired']}/{m['images']}, {m[r]['psnr']:.3f}, {m[r]['minus_blind']:+.3f} "
                     f"({m[r]['minus_blind_min']:+.3f} / {m[r]['minus_blind_max']:+.3f})" for r in RULES]
            lines.append(f"| {ds} | {saves} | {m['posterior_mean']:.1f} | {m['psnr_blind']:.3f} | "
                         + " | ".join(cells) + f" | {m['oracle']['psnr']:.3f} ({m['oracle']['minus_blind']:+.3f}) |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="x4", help="bundled name (x2, x3, x4) or checkpoint path")
    ap.add_argument("--datasets", nargs="+", default=["Set5", "Set14"])
    ap.add_argument("--chains", nargs="+", default=list(CHAINS),
                    help="qualities; '20>90' a re-save, '30>c>90' with the (3, 5) crop before it")
    ap.add_argument("--json", help="write the record here")
    ap.add_argument("--table", metavar="JSON", help="only print the markdown table of a recorded JSON")
    ap.add_argument("--docs", metavar="MD", help="with --table: also write it into MD's jpeg_evidence block")
    args = ap.parse_args()
    if args.table:
        text = table(json.loads(Path(args.table).read_text()))
        print(text)
        if args.docs:
            replace_block(Path(args.docs), "jpeg_evidence", text)
        return 0
    up = causalsr.load(args.model)
    results, per_image, timing = {}, {}, {}
    for ds in args.datasets:
        name, files = resolve_dataset(ds)
        t0 = time.perf_counter()
        per_image[name] = {f.name: measure_image(up, crop_to_multiple(load_hr_uint8(f)[0], up.scale),
                                                 tuple(args.chains)) for f in files}
        timing[name] = round(time.perf_counter() - t0, 1)
        results[name] = {c: summarise([img[c] for img in per_image[name].values()]) for c in args.chains}
    if args.json:
        meta = {**run_meta(" ".join(sys.argv)), "model": args.model, "scale": up.scale, "seconds": timing,
                "rules": {"min": "told jpeg = min(posterior estimate, container quality) for files with "
                                 "standard IJG tables; blind when the posterior reads at or below it",
                          "interval": "told jpeg = container quality when it is below the posterior's "
                                      "estimate - 1.645 sd (standard tables only); else blind"}}
        atomic_write_text(args.json, json.dumps({"meta": meta, "results": results, "per_image": per_image},
                                                indent=1))
    print(table({"results": results, "per_image": per_image}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
