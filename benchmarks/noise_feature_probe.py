"""How well whole-image noise features can read sigma, before any posterior is fitted on them (deviation 43).

    python3 benchmarks/noise_feature_probe.py --json benchmarks/results/noise_feature_probe.json

Features of each LR image (bicubic x4, then Gaussian noise, 8-bit rounding):
`quantiles` (`NoiseStatistics`, the bundled x4's noise input, deviation 42),
`patch` (`PatchNoise`'s three patch-covariance levels) and both. A small MLP
(2 x 32 SiLU, L1 loss, Adam, 3 seeds) learns sigma from the features of
80-px LR crops of BSD200 and T91 (4 noise levels each, uniform on 0-50), as
`fit-posterior` sees them, and reads the whole LR images of issue 17's grid
(BSD100 and Urban100, 10 images each, sigma 0-50). MAE over sigma 5-50 per
set, the clean reading, and MAE per level, averaged over the seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from causalsr.atomic import atomic_write_text
from causalsr.data.datasets import resolve_dataset
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.evaluation.harness import load_hr_uint8, run_meta
from causalsr.models.noise_stats import NoiseStatistics, PatchNoise

LEVELS = (0.0, 5.0, 10.0, 15.0, 25.0, 35.0, 50.0)
CROP = 80
FEATURES = {"quantiles": ("q",), "patch": ("h",), "both": ("q", "h")}


def features(lr: np.ndarray) -> dict[str, np.ndarray]:
    """log1p of the block-level quantiles (q) and the patch-covariance levels (h) of an HxWx3 uint8 image."""
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return {"q": np.log1p(NoiseStatistics().quantiles(x)[0].numpy()),
                "h": np.log1p(PatchNoise().levels(x)[0].numpy())}


def samples(name: str, n: int, levels, rng: np.random.Generator, crop: int = 0) -> list[tuple[float, dict, str]]:
    """(sigma, features, set) for `n` images of `name` spread over the set, at each of `levels()` (a crop of
    `crop` LR pixels at a random place, or the whole image)."""
    _, paths = resolve_dataset(name)
    out = []
    for i in range(n):
        hr = load_hr_uint8(paths[i * len(paths) // n])[0]
        for s in levels():
            lr = degrade_numpy_uint8(hr, parse_degradation(f"noise:{s:g}" if s else "bicubic", 4, seed=i))
            if crop:
                h, w = lr.shape[:2]
                if min(h, w) < crop:
                    continue
                y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
                lr = lr[y:y + crop, x:x + crop]
            out.append((float(s), features(lr), name))
    return out


def fit_and_read(train: list, test: list, keys: tuple[str, ...], seed: int) -> np.ndarray:
    """An MLP fitted on `train`'s features `keys` (L1 on sigma); its readings of `test`, clipped to 0-50."""
    def matrix(rows):
        return torch.tensor(np.array([np.concatenate([f[k] for k in keys]) for _, f, _ in rows]), dtype=torch.float32)
    a, b = matrix(train), matrix(test)
    mu, sd = a.mean(0), a.std(0) + 1e-6
    y = torch.tensor([s for s, _, _ in train], dtype=torch.float32)[:, None]
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(a.shape[1], 32), torch.nn.SiLU(), torch.nn.Linear(32, 32),
                              torch.nn.SiLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(1500):
        opt.zero_grad()
        (net((a - mu) / sd) - y).abs().mean().backward()
        opt.step()
    with torch.no_grad():
        return net((b - mu) / sd)[:, 0].clamp(0, 50).numpy()


def summary(test: list, readings: np.ndarray) -> dict:
    truth = np.array([s for s, _, _ in test])
    sets = np.array([n for _, _, n in test])
    noisy = truth >= 5
    out = {f"mae_5_50_{s}": float(np.abs(readings - truth)[noisy & (sets == s)].mean()) for s in np.unique(sets)}
    out["mae_5_50_both"] = float(np.abs(readings - truth)[noisy].mean())
    out["clean_reading"] = float(readings[truth == 0].mean())
    out["mae_per_level"] = {f"{s:g}": float(np.abs(readings - truth)[truth == s].mean()) for s in LEVELS if s}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the record here")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    draw = lambda: list(np.round(rng.uniform(0, 50, 4), 1))  # noqa: E731
    train = samples("BSD200", 100, draw, rng, CROP) + samples("T91", 40, draw, rng, CROP)
    test = samples("BSD100", 10, lambda: LEVELS, rng) + samples("Urban100", 10, lambda: LEVELS, rng)
    results = {}
    for name, keys in FEATURES.items():
        runs = [summary(test, fit_and_read(train, test, keys, seed)) for seed in range(args.seeds)]
        results[name] = {k: (float(np.mean([r[k] for r in runs])) if not isinstance(runs[0][k], dict) else
                             {lv: float(np.mean([r[k][lv] for r in runs])) for lv in runs[0][k]}) for k in runs[0]}
        r = results[name]
        print(f"{name:9s} MAE 5-50 BSD100 {r['mae_5_50_BSD100']:.2f} Urban100 {r['mae_5_50_Urban100']:.2f} "
              f"both {r['mae_5_50_both']:.2f}, clean reads {r['clean_reading']:.2f}; per level "
              + " ".join(f"{k}:{v:.2f}" for k, v in r["mae_per_level"].items()))
    if args.json:
        doc = {"meta": run_meta(" ".join(sys.argv)), "train_crops": len(train), "test_images": len(test) // len(LEVELS),
               "results": results}
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
