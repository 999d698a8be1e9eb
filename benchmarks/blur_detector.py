#!/usr/bin/env python3
"""Can a CNN trained only for it tell the paper's blur preset from a clean image, from the LR alone?

A bound for issue #5's blur target that does not depend on CausalSR's
posterior: a residual CNN is trained to classify an LR image as clean
(bicubic x4) or blurred (the paper's blur preset, 3x3 kernel with sigma 2.0
before the x4 downscale). Every training HR crop (T91 and BSD200) is shown
both ways in the same batch, so the blur is the only cue. A test image is
scored whole (the mean logit over the image), clean and blurred, and the
script reports, per set, how many of each it flags as blurred (logit > 0), the
accuracy at logit 0, the best-threshold accuracy (as `blur_visibility.py`),
the ROC AUC and the paired logit shift.

    python3 benchmarks/blur_detector.py train --out outputs/blur_detector.safetensors --steps 9000 --minutes 5.5 \
        --num-workers 8
    python3 benchmarks/blur_detector.py eval outputs/blur_detector.safetensors Set14 BSD100 Urban100 \\
        --json benchmarks/results/blur_detector.json

Training wants a GPU (`--device cuda`); evaluation runs on the CPU. The
weights behind docs/benchmarks.md (the first command on one H200, stopped by
`--minutes` at step 6,258) are committed as
`benchmarks/results/blur_detector.safetensors`, with their training log.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from causalsr.atomic import atomic_write_text
from causalsr.data.datasets import list_images, resolve_dataset
from causalsr.evaluation.harness import load_hr_uint8, run_meta
from causalsr.training.runlog import device_name

sys.path.insert(0, str(Path(__file__).parent))
from blur_visibility import best_threshold_accuracy, paired_lr  # noqa: E402  (sibling benchmark script)

SCALE = 4
TRAIN_ROOTS = ("T91", "BSD200")  # by name, from the data folder (docs/data.md)


class Detector(nn.Module):
    """Residual CNN -> per-pixel logit, averaged over the image (any size)."""

    def __init__(self, channels: int = 64, blocks: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                                nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(blocks))
        self.tail = nn.Conv2d(channels, 1, 1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.head(lr - 0.5)
        for block in self.body:
            x = x + block(x)
        return self.tail(x).mean((1, 2, 3))


class PairedCrops(Dataset):
    """Random HR crops (flips, 90-degree turns), each degraded clean and blurred: (2, 3, h, w) in [0, 1]."""

    def __init__(self, roots, hr_patch: int, length: int, seed: int):
        self.images = [im for r in roots for p in list_images(r)
                       if min((im := load_hr_uint8(p)[0]).shape[:2]) >= hr_patch]
        self.hr_patch, self.length, self.seed = hr_patch, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng((self.seed, i))
        im = self.images[rng.integers(len(self.images))]
        y, x = (rng.integers(s - self.hr_patch + 1) for s in im.shape[:2])
        hr = np.rot90(im[y:y + self.hr_patch, x:x + self.hr_patch], rng.integers(4))
        hr = np.ascontiguousarray(hr[:, ::-1] if rng.random() < 0.5 else hr)
        return torch.cat(paired_lr(hr, seed=0))  # neither preset adds noise, so the seed does not matter


def train(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    data = PairedCrops(args.train_roots, args.hr_patch, args.steps * args.batch_size, args.seed)
    loader = DataLoader(data, batch_size=args.batch_size, num_workers=args.num_workers, shuffle=False,
                        pin_memory=device.type == "cuda", drop_last=True)
    model = Detector().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    labels = torch.tensor([0.0, 1.0], device=device).repeat(args.batch_size)
    started, recent = time.monotonic(), []
    for step, pairs in enumerate(loader, 1):
        logits = model(pairs.to(device, non_blocking=True).flatten(0, 1))
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        recent.append((loss.item(), ((logits > 0).float() == labels).float().mean().item()))
        out_of_time = time.monotonic() - started > args.minutes * 60
        if step % 200 == 0 or step == args.steps or out_of_time:
            loss_m, acc_m = np.mean(recent, axis=0)
            print(f"step {step}/{args.steps} loss {loss_m:.4f} train acc {acc_m:.3f} "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            recent = []
            meta = {"steps": str(step), "hr_patch": str(args.hr_patch), "batch_size": str(args.batch_size),
                    "lr": str(args.lr), "device": device_name(device)}
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, args.out, meta)
        if out_of_time:
            break


def roc_auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score of a blurred image > score of a clean one), ties counted half (Mann-Whitney)."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def evaluate(args: argparse.Namespace) -> None:
    model = Detector()
    model.load_state_dict(load_file(args.weights))
    model.eval()
    with safe_open(args.weights, "pt") as f:
        meta = f.metadata()
    rows = []
    print("| set | images | flagged at 0: blurred / clean | accuracy at 0 | best-threshold accuracy | ROC AUC | "
          "paired logit shift (mean +- sd) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets:
        label, paths = resolve_dataset(name)
        scores = []
        for i, path in enumerate(paths):
            with torch.no_grad():
                scores.append([model(lr).item() for lr in paired_lr(load_hr_uint8(path)[0], i)])
        s = np.array(scores)
        flagged = (s > 0).sum(0)
        row = {"set": label, "images": len(s), "flagged_clean": int(flagged[0]), "flagged_blurred": int(flagged[1]),
               "accuracy_at_0": float((len(s) - flagged[0] + flagged[1]) / (2 * len(s))),
               "best_threshold_accuracy": best_threshold_accuracy(s[:, 0], s[:, 1]),
               "roc_auc": roc_auc(s[:, 0], s[:, 1]), "shift_mean": float((s[:, 1] - s[:, 0]).mean()),
               "shift_sd": float((s[:, 1] - s[:, 0]).std()), "logits": s.tolist()}
        rows.append(row)
        print(f"| {label} | {len(s)} | {flagged[1]} / {flagged[0]} | {row['accuracy_at_0']:.2f} "
              f"| {row['best_threshold_accuracy']:.2f} | "
              f"{row['roc_auc']:.3f} | {row['shift_mean']:.2f} +- {row['shift_sd']:.2f} |", flush=True)
    if args.json:
        record = {**run_meta(" ".join(sys.argv)), "weights": args.weights, "detector": meta, "sets": rows}
        atomic_write_text(args.json, json.dumps(record, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True, help="weights file (.safetensors), rewritten every 200 steps")
    t.add_argument("--train-roots", nargs="+", default=list(TRAIN_ROOTS))
    t.add_argument("--steps", type=int, default=8000)
    t.add_argument("--minutes", type=float, default=math.inf, help="stop (and save) after this long")
    t.add_argument("--batch-size", type=int, default=32, help="HR crops per step, each shown clean and blurred")
    t.add_argument("--hr-patch", type=int, default=192)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--num-workers", type=int, default=4)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval")
    e.add_argument("weights")
    e.add_argument("datasets", nargs="+")
    e.add_argument("--json", help="write the record (date, machine, commit, per-image logits) here")
    args = parser.parse_args()
    train(args) if args.command == "train" else evaluate(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
