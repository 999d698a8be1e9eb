#!/usr/bin/env python3
"""How far Algorithm 1 moves Z: ||Z' - Z|| after the counterfactual step, against line 15's delta.

On `causalsr inspect`'s synthetic probe images (8), 4 draws each, with the
trainer's Algorithm 1 settings (`LossConfig`). Line 15 fires when the distance
exceeds delta; a model whose distances all stay far below it never needs the
correction (deviation 19 in docs/paper-mapping.md).

    python3 benchmarks/line15_distance.py --model x2 --json benchmarks/results/line15_distance_x2.json
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

import causalsr
from causalsr.atomic import atomic_write_text
from causalsr.causal.counterfactuals import generate_counterfactual
from causalsr.evaluation.harness import run_meta
from causalsr.evaluation.liveness import probe_images
from causalsr.training.losses import LossConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="x4")
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    up = causalsr.load(args.model)
    model, c = up.model.eval(), LossConfig()
    torch.manual_seed(0)
    dist, alpha = [], []
    for lr, hr in zip(*probe_images(up.scale, n=8)):
        with torch.no_grad():
            pooled = model.condition(lr)[2]
        for _ in range(args.draws):
            cf = generate_counterfactual(model, hr, lr, pooled, alpha0=c.cf_alpha0, beta=c.cf_beta,
                                         gamma=c.cf_gamma, delta=c.cf_delta, lam=c.cf_lambda)
            dist += (cf.z_cf - cf.z_ref).norm(dim=1).tolist()
            alpha += cf.alpha.flatten().tolist()
    out = {"delta": c.cf_delta, "draws": len(dist), "distance_median": float(np.median(dist)),
           "distance_max": max(dist), "alpha_median": float(np.median(alpha))}
    print(json.dumps(out))
    atomic_write_text(args.json, json.dumps({"meta": run_meta(" ".join(sys.argv)), "model": args.model, **out},
                                            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
