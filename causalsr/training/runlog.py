"""Rank 0's record of a training run: train_log.csv (a loss window per row), optional TensorBoard, loss plot.

Also `device_name`, the machine line of run records.
"""
from __future__ import annotations

import csv
import math
import platform
import time
from pathlib import Path

import torch

from causalsr.atomic import atomic_path
from causalsr.training.distributed import DistContext


class CsvLog:
    """Append-only CSV whose header grows when a new column appears (rare: a term first seen late)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.fields: list[str] = []
        self.rows: list[dict] = []
        if path.exists() and resume_step is not None:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                self.rows = [r for r in reader if int(r["step"]) <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, self.fields, restval="")
            w.writeheader()
            w.writerows(self.rows)

    def write(self, row: dict) -> None:
        row = {k: (repr(float(v)) if isinstance(v, float) else v) for k, v in row.items()}
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if new:
            self.fields += new
            self._rewrite()
            return
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields, restval="").writerow(row)


def tensorboard(log_dir: Path):
    """A TensorBoard writer for `log_dir`, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


def plot_losses(csv_path: Path, png_path: Path) -> bool:
    """Loss curves as a PNG when matplotlib is importable; returns whether a plot was written."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    terms = [k for k in (rows[0] if rows else {}) if k.startswith("loss_")]
    if not terms:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    steps = [int(r["step"]) for r in rows]
    for k in terms:
        ax.plot(steps, [float(r[k]) if r[k] else math.nan for r in rows], label=k[5:])
    ax.set_xlabel("step")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=8)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return True


def device_name(device: torch.device) -> str:
    """The GPU's or CPU's model name, for run records."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


class LossWindow:
    """The loss terms summed since the last log row (some terms exist only every cf_every steps)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.start = time.monotonic()

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1
        self.steps += 1

    def means(self, dist: DistContext, device: torch.device) -> dict[str, float]:
        """Each term's mean over the window and over ranks (every rank must call this together)."""
        names = sorted(self.sums)
        sums = torch.stack([torch.as_tensor(self.sums[k], dtype=torch.float64) / self.counts[k]
                            for k in names]).to(device)
        return dict(zip(names, (dist.all_sum(sums) / dist.world_size).tolist()))

    def samples_per_s(self, batch_size: int) -> float:
        return self.steps * batch_size / max(time.monotonic() - self.start, 1e-9)


class TrainLog:
    """train_log.csv plus TensorBoard (when installed) under `out_dir`; rank 0 only."""

    def __init__(self, out_dir: Path, resume_step: int | None):
        self.out_dir = out_dir
        self.csv = CsvLog(out_dir / "train_log.csv", resume_step)
        self.tb = tensorboard(out_dir / "tensorboard")

    def write(self, row: dict) -> None:
        self.csv.write(row)
        if self.tb is not None:
            for k, value in row.items():
                if k != "step":
                    self.tb.add_scalar(k, float(value), row["step"])

    def close(self) -> None:
        """Plot the loss curves (when matplotlib is there) and close TensorBoard."""
        if not plot_losses(self.csv.path, self.out_dir / "train_loss.png"):
            print("causalsr train: matplotlib not installed; loss curves are in train_log.csv only", flush=True)
        if self.tb is not None:
            self.tb.close()
