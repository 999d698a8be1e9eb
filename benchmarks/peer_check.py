"""A peer's expected behaviour on Set5 x4, recorded (issue 16): scores on clean and JPEG-30 LR, and blocking.

    python3 benchmarks/peer_check.py --method realesrgan --json benchmarks/results/realesrgan_check_set5.json

For the method and bicubic: PSNR / SSIM / LPIPS on bicubic and `jpeg` (quality 30) LR, and the per-image
blockiness of the output's Y on the 32-px grid (where x4 puts the LR's 8-px JPEG blocks;
`metrics.image_stats.blockiness`: 1 = no grid), beside the HR's own.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from causalsr.data.datasets import resolve_dataset
from causalsr.data.imageio import read_image
from causalsr.data.imresize import crop_to_multiple
from causalsr.evaluation.harness import evaluate, make_lr_cached, run_meta
from causalsr.evaluation.methods import load_method
from causalsr.metrics.image_stats import blockiness
from causalsr.metrics.psnr_ssim import to_measured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="realesrgan")
    p.add_argument("--dataset", default="Set5")
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args(argv)
    scale, methods = 4, [load_method(args.method), load_method("bicubic")]
    scores = [r.to_dict() for m in methods for r in evaluate(m, [args.dataset], [scale], ["bicubic", "jpeg"],
                                                              ("psnr", "ssim", "lpips"), progress=False)]
    _, files = resolve_dataset(args.dataset)
    blocks: dict[str, dict[str, float]] = {}
    for f in files:
        hr = crop_to_multiple(read_image(f).rgb, scale)
        lr = make_lr_cached(hr, scale, "jpeg")
        blocks[f.stem] = {"hr": blockiness(to_measured(hr), 8 * scale)}
        blocks[f.stem].update({m.name: blockiness(to_measured(m.upscale(lr, scale)), 8 * scale) for m in methods})
    doc = {"results": scores, "blockiness_jpeg30": blocks,
           "meta": run_meta("python3 benchmarks/peer_check.py " + shlex.join(argv or sys.argv[1:]), "basicsr")}
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    for r in scores:
        print(f"{r['method']} {r['degradation']}: {r['psnr']:.2f} / {r['ssim']:.4f} / LPIPS {r['lpips']:.3f}")
    for name, b in blocks.items():
        print(name, {k: round(v, 3) for k, v in b.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
