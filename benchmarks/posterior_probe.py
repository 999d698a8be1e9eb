#!/usr/bin/env python3
"""Short probe of the degradation posterior alone: can it learn the named factors?

Trains `DegradationPosterior` on the named-factor NLL only (Adam, lr 1e-3,
T91 + BSD200, HR patch 96, batch 16, 50% clean and 20% preset samples, one
thread), then reports the inference posterior q(Z | Y) on Set14 degraded with
each paper preset, as `benchmarks/analyze_accuracy.py` does for a full model.

Words in the first argument: `spectrum` adds the block-DCT spectrum input
(else the conv encoder alone); `mse` adds 10 x the squared error of the mean to
the NLL; `tiles` analyses Set14 with `analysis_crop=24` (the training-patch
size, as the bundled x4 does), instead of whole images; `multicrop` trains on
256-px HR patches (64-px LR, analysed as 3x3 crops of 24 px with `tiles`), so
the head learns from the pooled evidence of several crops, as in `analyze`.
Steps stop early at the end of 100 passes over the training images.

    python3 benchmarks/posterior_probe.py spectrum-tiles 3000
    python3 benchmarks/posterior_probe.py plain-tiles 3000
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from causalsr.data.datasets import HRPatchDataset, collate, resolve_dataset
from causalsr.data.degradations import SamplerConfig, degrade_numpy_uint8, preset
from causalsr.evaluation.harness import load_hr_uint8
from causalsr.factors import FACTOR_NAMES, denormalise, normalise
from causalsr.models.posterior import DegradationPosterior
from causalsr.training.losses import named_factor_nll

SCALE = 4


def main() -> int:
    variant, steps = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # Training patches are 24x24 LR, so analysis_crop only changes how Set14 is analysed.
    post = DegradationPosterior(scale=SCALE, spectrum="spectrum" in variant,
                                analysis_crop=24 if "tiles" in variant else 0)
    patch = 256 if "multicrop" in variant else 96
    data = HRPatchDataset(["T91", "BSD200"], SCALE, patch,
                          SamplerConfig(p_clean=0.5, p_preset=0.2), seed=0, repeat=100)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, collate_fn=collate, num_workers=1)
    opt = torch.optim.Adam(post.parameters(), lr=1e-3)
    t0, step = time.time(), 0
    for batch in loader:
        q = post(batch["lr"], batch["hr"])
        loss = named_factor_nll(q, batch["factors"])
        if "mse" in variant:
            loss = loss + 10 * (q.mean[:, :len(FACTOR_NAMES)] - normalise(batch["factors"])).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} nll {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
        if step >= steps:
            break
    post.eval()
    _, paths = resolve_dataset("Set14")
    print(f"{variant}, {steps} steps: Set14 x{SCALE}, mean estimate per preset ({', '.join(FACTOR_NAMES)})")
    with torch.no_grad():
        for name in ("bicubic", "blur", "noise", "jpeg", "noise+jpeg"):
            est = []
            for i, path in enumerate(paths):
                hr, _ = load_hr_uint8(path)
                params = preset(name, SCALE, seed=i)
                lr = torch.from_numpy(degrade_numpy_uint8(hr, params)).permute(2, 0, 1)[None].float() / 255
                est.append(denormalise(post(lr).mean[0, :len(FACTOR_NAMES)]).numpy())
            print(f"  {name:11s} true {params.factors().round(1)} est {np.mean(est, 0).round(2)} "
                  f"sd {np.std(est, 0).round(2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
