#!/usr/bin/env python3
"""Short probe of the restorer alone: how init, optimiser and degradation mix change early training.

Trains `EfficientRestorer` (zero conditioning) on T91 + BSD200 at x4, HR
patch 96, batch 16, L1, lr 5e-4, one thread, and prints Set5 PSNR-Y every
100 steps. Variants (words in the first argument):
  default  PyTorch's default init | xavier  Alg. 2 line 1's Xavier init
  clean    bicubic-only LR        | (else)  the cpu-small degradation mix
  cadam    Eq. 26 CausalAdam      | (else)  torch.optim.Adam
  zero     residual branches and upsampler zero-initialised (after the init above)

    python3 benchmarks/restorer_probe.py clean-default 300
"""
from __future__ import annotations

import sys
import time

import torch

from causalsr.data.datasets import HRPatchDataset, collate
from causalsr.data.degradations import SamplerConfig
from causalsr.models.backbone import EfficientRestorer
from causalsr.training.optim import CausalAdam
from causalsr.training.validation import load_val_set, validate


class Unconditioned(torch.nn.Module):
    """The restorer with zero conditioning, as a plain LR -> SR module."""

    def __init__(self, net: EfficientRestorer, cond_dim: int):
        super().__init__()
        self.net, self.cond_dim = net, cond_dim

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.net(lr, lr.new_zeros(lr.shape[0], self.cond_dim), None)


def main() -> int:
    variant, steps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Unconditioned(EfficientRestorer(scale=4, cond_dim=264, ctx_dim=256), 264)
    if "xavier" in variant:
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not getattr(m, "keep_init", False):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.zeros_(m.bias)
    if "zero" in variant:  # residual branches and upsampler start at zero: the restorer starts as bicubic
        for block in net.net.blocks:
            torch.nn.init.zeros_(block.conv2.weight)
            torch.nn.init.zeros_(block.conv2.bias)
        torch.nn.init.zeros_(net.net.upsample[0].weight)
        torch.nn.init.zeros_(net.net.upsample[0].bias)
    clean = "clean" in variant
    sampler = SamplerConfig(p_clean=1.0, p_preset=0.0) if clean else SamplerConfig(p_clean=0.4, p_preset=0.2)
    data = HRPatchDataset(["T91", "BSD200"], 4, 96, sampler, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, num_workers=1, collate_fn=collate,
                                         persistent_workers=True)
    opt = (CausalAdam if "cadam" in variant else torch.optim.Adam)(net.parameters(), lr=5e-4)
    _, val = load_val_set("Set5", 4, 0, None)
    step, t0 = 0, time.time()
    while step < steps:
        for batch in loader:
            loss = (net(batch["lr"]) - batch["hr"]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 100 == 0:
                net.eval()
                r = validate(net, val, 4, torch.device("cpu"))
                net.train()
                print(f"{variant} step {step} {time.time() - t0:.0f}s Set5 x4 PSNR-Y {r['psnr']:.2f} "
                      f"SSIM {r['ssim']:.4f}", flush=True)
            if step >= steps:
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
