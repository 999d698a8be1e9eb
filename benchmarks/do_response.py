#!/usr/bin/env python3
"""Does `--do` act, in the stated direction, and does its PSNR peak at the truth? (issue 13)

For every image of a benchmark set the HR image is degraded with one
parameterised degradation (e.g. `noise:15`), then restored with
do(FACTOR = v) for each v. Recorded per v, averaged over images:

- PSNR-Y against the HR image (scale-pixel border crop);
- high-frequency energy: mean squared Laplacian of the output's Y (noise left in
  raises it, so it should fall as the told noise level rises);
- blockiness: mean |step| across the 8*scale-pixel JPEG block boundaries of the
  output's Y over the mean |step| elsewhere (1 = no visible blocks);
- sharpness: mean gradient magnitude of the output's Y;
- mean |output(v) - output(v_first)| in grey levels.

    python3 benchmarks/do_response.py --model x4 --dataset Set5 --degradation noise:15 \
        --factor noise --values 0 5 10 15 20 30 --json benchmarks/results/do_noise_set5_x4.json

`--also noise=0` sets other factors too, for every v (a diagnostic: is a peak away
from the truth caused by what the posterior reads for the other factors?).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import causalsr
from causalsr.atomic import atomic_write_text
from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.data.imresize import crop_to_multiple
from causalsr.evaluation.harness import load_hr_uint8, run_meta
from causalsr.metrics.image_stats import blockiness, hf_energy, sharpness
from causalsr.metrics.psnr_ssim import psnr, to_measured


def measure(up, images: list[np.ndarray], spec: str, factor: str, values: list[float],
            also: dict[str, float] | None = None) -> dict:
    """Per-value means over `images` of the measures in the module docstring (`also`: further do() values)."""
    scale = up.scale
    rows: dict[float, dict[str, list[float]]] = {v: {} for v in values}
    for i, hr in enumerate(images):
        lr = degrade_numpy_uint8(hr, parse_degradation(spec, scale, seed=i))
        first = None
        for v in values:
            out = up.upscale(lr, do={**(also or {}), factor: v})
            y = to_measured(out)
            first = out if first is None else first
            stats = {"psnr_y": psnr(hr, out, crop=scale), "hf_energy": hf_energy(y),
                     "blockiness": blockiness(y, 8 * scale), "sharpness": sharpness(y),
                     "mean_abs_change": float(np.abs(out.astype(np.float64) - first).mean())}
            for k, s in stats.items():
                rows[v].setdefault(k, []).append(s)
        blind = up.upscale(lr)
        rows.setdefault("blind", {}).setdefault("psnr_y", []).append(psnr(hr, blind, crop=scale))
    return {str(v): {k: float(np.mean(s)) for k, s in r.items()} for v, r in rows.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="x4", help="bundled name (x2, x3, x4) or checkpoint path")
    ap.add_argument("--dataset", default="Set5")
    ap.add_argument("--degradation", required=True, help="e.g. noise:15, jpeg:30, gblur:1.5")
    ap.add_argument("--factor", required=True, choices=causalsr.factors.FACTOR_NAMES)
    ap.add_argument("--values", type=float, nargs="+", required=True)
    ap.add_argument("--also", nargs="+", default=[], metavar="FACTOR=V", help="also do(FACTOR=V) for every v")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    also = {}
    for item in args.also:
        name, _, value = item.partition("=")
        if name not in causalsr.factors.FACTOR_NAMES or not value:
            ap.error(f"--also {item!r}: expected FACTOR=V, FACTOR one of {', '.join(causalsr.factors.FACTOR_NAMES)}")
        also[name] = float(value)
    up = causalsr.load(args.model)
    _, files = resolve_dataset(args.dataset)
    images = [crop_to_multiple(load_hr_uint8(f)[0], up.scale) for f in files]
    result = measure(up, images, args.degradation, args.factor, args.values, also)
    fixed = "".join(f", {k}={v:g}" for k, v in also.items())
    print(f"{args.dataset} x{up.scale} {args.degradation}, do({args.factor}=v{fixed}):")
    print("| v | PSNR-Y | HF energy | blockiness | sharpness | mean abs change |")
    print("|---|---|---|---|---|---|")
    for v in map(str, args.values):
        r = result[v]
        print(f"| {v} | {r['psnr_y']:.3f} | {r['hf_energy']:.2f} | {r['blockiness']:.4f} | {r['sharpness']:.3f} "
              f"| {r['mean_abs_change']:.3f} |")
    print(f"blind PSNR-Y {result['blind']['psnr_y']:.3f}")
    if args.json:
        record = {"meta": run_meta(" ".join(sys.argv)), "model": args.model, "dataset": args.dataset,
                  "degradation": args.degradation, "factor": args.factor, "also": also, "images": len(images),
                  "by_value": result}
        atomic_write_text(args.json, json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
