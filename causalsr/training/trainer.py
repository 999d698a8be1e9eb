"""Algorithm 2: the CausalSR training loop.

Per iteration t (Alg. 2 line numbers):
  4     next global batch (this rank's share of it)
  5-7   `Objective` (counterfactuals, posterior, interventions; Eq. 24 weights inside)
  9,13,17  one backward of the sum of the gradient-isolated block losses,
        then gradient averaging over ranks, then a non-finite guard
  10-11,14-15,18-19  one `CausalAdam` step per block (phi, theta, psi, disc)
  20    momentum-encoder EMA
  21    LR schedule (Eq. 26's ratio clamp lives in the optimiser)

Around it: data loading with worker processes, rank-0 logging (tqdm, CSV,
optional TensorBoard), validation (PSNR/SSIM-Y on a benchmark), rotated
checkpoints with exact resume, a time limit, and the final inference export.
"""
from __future__ import annotations

import csv
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from causalsr.atomic import atomic_path
from causalsr.config import to_dict
from causalsr.training import checkpoint as ckpt
from causalsr.training.config import TrainConfig, resolve_path
from causalsr.training.distributed import DistContext
from causalsr.training.optim import CausalAdam, make_scheduler

BLOCKS = ("phi", "theta", "psi", "disc")


class TrainingError(RuntimeError):
    """Training cannot continue; the message is one line for the user."""


# ---------------------------------------------------------------------- data
class _EpochIndexed(Dataset):
    """Takes (epoch, index) keys so worker copies follow the epoch without `set_epoch` calls reaching them."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if epoch != self.epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
            self.epoch = epoch
        return self.dataset[index]


class GlobalBatchSampler:
    """Endless (epoch, index) batches: this rank's slice of global batch `start`, `start + 1`, ...

    Epoch e is a permutation seeded by (seed, e); global batch k of an epoch is
    its k-th run of `global_batch` indices (the tail is dropped), and rank r takes
    the r-th of `world` equal slices. So the sample sequence depends only on the
    seed and the global batch count, which is what a checkpoint stores.
    """

    def __init__(self, n: int, global_batch: int, rank: int, world: int, seed: int, start: int = 0):
        if global_batch % world:
            raise TrainingError(f"data.batch_size {global_batch} is not divisible by the {world} processes")
        if n < global_batch:
            raise TrainingError(f"the training set has {n} samples, fewer than data.batch_size {global_batch}; "
                                "raise data.repeat or add images")
        self.n, self.batch, self.rank, self.world, self.seed, self.start = n, global_batch, rank, world, seed, start
        self.per_epoch = n // global_batch
        self.local = global_batch // world

    def __iter__(self):
        b, epoch, perm = self.start, -1, None
        while True:
            e, k = divmod(b, self.per_epoch)
            if e != epoch:
                epoch, perm = e, torch.randperm(self.n,
                                                generator=torch.Generator().manual_seed(self.seed * 100_003 + e))
            lo = k * self.batch + self.rank * self.local
            yield [(e, int(i)) for i in perm[lo:lo + self.local]]
            b += 1


def build_dataset(cfg: TrainConfig, base: Path | None) -> Dataset:
    """The training set of `cfg.data`: paired folders if given, else HR folders degraded on the fly."""
    from causalsr.data.datasets import HRPatchDataset, PairedDataset

    d, scale = cfg.data, cfg.model.scale
    if d.paired_lr or d.paired_hr:
        if not (d.paired_lr and d.paired_hr):
            raise TrainingError("data.paired_lr and data.paired_hr must be given together")
        return PairedDataset(resolve_path(d.paired_lr, base), resolve_path(d.paired_hr, base), scale,
                             d.patch_size, seed=cfg.seed)
    if not d.train_roots:
        raise TrainingError("no training data: set data.train_roots (HR folders) or data.paired_lr/paired_hr")
    roots = [str(resolve_path(r, base)) for r in d.train_roots]
    return HRPatchDataset(roots, scale, d.patch_size, d.sampler, seed=cfg.seed, repeat=d.repeat)


# ------------------------------------------------------------------- logging
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


def _tensorboard(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


def _plot_losses(csv_path: Path, png_path: Path) -> bool:
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


# ---------------------------------------------------------------- validation
@dataclass
class ValImage:
    name: str
    hr: np.ndarray   # uint8 HxWx3, cropped to a multiple of the scale
    lr: torch.Tensor  # 1x3xhxw float
    grey: bool


def load_val_set(name_or_path: str, scale: int, max_images: int, base: Path | None) -> tuple[str, list[ValImage]]:
    """Benchmark images with their standard MATLAB-bicubic LR (as the eval protocol makes them)."""
    from causalsr.data.datasets import resolve_dataset
    from causalsr.data.imageio import read_image, to_uint8
    from causalsr.data.imresize import crop_to_multiple, make_lr

    target = resolve_path(name_or_path, base) if Path(name_or_path).suffix or "/" in name_or_path else name_or_path
    name, files = resolve_dataset(target)
    images = []
    for path in files[:max_images] if max_images > 0 else files:
        img = read_image(path)
        rgb = to_uint8(img.rgb)
        lr = make_lr(rgb, scale)
        images.append(ValImage(path.stem, crop_to_multiple(rgb, scale),
                               torch.from_numpy(lr.astype(np.float32) / 255.0).permute(2, 0, 1)[None], img.grey))
    return name, images


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[ValImage], scale: int, device: torch.device) -> dict[str, float]:
    """Mean PSNR / SSIM on Y with a `scale`-pixel border crop, on uint8-quantised outputs."""
    from causalsr.data.imageio import from_tensor
    from causalsr.metrics.psnr_ssim import psnr, ssim

    was_training = model.training
    model.eval()
    p, s = [], []
    try:
        for im in images:
            sr = from_tensor(model(im.lr.to(device)).clamp(0, 1))
            p.append(psnr(im.hr, sr, crop=scale, grey=im.grey))
            s.append(ssim(im.hr, sr, crop=scale, grey=im.grey))
    finally:
        model.train(was_training)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}


def device_name(device: torch.device) -> str:
    """The GPU's or CPU's model name, for run records."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def is_grown_input(source: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether `target` is conv weight `source` with more input channels (e.g. factor maps added to the input)."""
    return (source.dim() == 4 and target.dim() == 4 and source.shape[0] == target.shape[0]
            and source.shape[2:] == target.shape[2:] and source.shape[1] < target.shape[1])


def grown_input(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`source` in the leading input channels, zeros in the new ones: the grown layer computes what `source` did."""
    out = torch.zeros_like(target)
    out[:, :source.shape[1]] = source
    return out


def reinitialise(model: torch.nn.Module, name: str) -> None:
    """Fresh weights (each layer's own `reset_parameters`) for submodule `name` of `model`."""
    part = getattr(model, name, None)
    if not isinstance(part, torch.nn.Module):
        raise TrainingError(f"run.reinit: the model has no part {name!r}")
    for layer in part.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()  # type: ignore[operator]  # torch types Module attributes as Tensor | Module
    print(f"causalsr train: {name} re-initialised", file=sys.stderr)


def warm_start(model: torch.nn.Module, path: Path) -> tuple[int, int]:
    """Copy every tensor of checkpoint `path` whose name and shape match `model`; returns (copied, total).

    Reads safetensors only. Used to start an x2/x3 run from an x4 model: the
    layers whose shape depends on the scale keep their fresh initialisation.
    A conv that gained input channels (`factor_maps`) keeps the old weights
    in its leading channels and starts the new ones at zero.
    """
    from safetensors.torch import load_file

    file = path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")
    if not file.is_file():
        raise TrainingError(f"{file}: run.init_from checkpoint not found")
    source = load_file(str(file))
    state = model.state_dict()
    matched = {k: v for k, v in source.items() if k in state and state[k].shape == v.shape}
    matched.update({k: grown_input(v, state[k]) for k, v in source.items()
                    if k in state and is_grown_input(v, state[k])})
    model.load_state_dict(matched, strict=False)
    print(f"causalsr train: warm start from {file}: {len(matched)} of {len(state)} tensors copied", file=sys.stderr)
    return len(matched), len(state)


# ------------------------------------------------------------------- trainer
class Trainer:
    """Runs Algorithm 2 for `cfg`; one instance per process (rank).

    Args:
        cfg: the run's `TrainConfig`.
        dist: this process's `DistContext` (a 1-process context by default).
        config_base: folder relative data paths fall back to (the preset's repository root).
        preset: preset name recorded in the inference export.
    """

    def __init__(self, cfg: TrainConfig, dist: DistContext | None = None, config_base: Path | None = None,
                 preset: str = "custom"):
        self.cfg, self.dist, self.base, self.preset = cfg, dist or DistContext(), config_base, preset
        if cfg.data.scale is not None and cfg.data.scale != cfg.model.scale:
            raise TrainingError(f"data.scale {cfg.data.scale} differs from model.scale {cfg.model.scale}")
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True)
        self.device = self.dist.device
        self.out_dir = Path(cfg.run.out_dir)
        from causalsr.models.causalsr import CausalSR
        from causalsr.training.losses import Objective

        torch.manual_seed(cfg.seed)  # identical initialisation on every rank (then broadcast for safety)
        self.model = CausalSR(cfg.model).to(self.device)
        if cfg.run.init_from:
            warm_start(self.model, Path(cfg.run.init_from))
        for name in cfg.run.reinit:
            reinitialise(self.model, name)
        self.dist.broadcast_module(self.model)
        self._seed_rank(0)
        self.objective = Objective(self.model, cfg.loss)
        blocks = self.model.parameter_blocks()
        o = cfg.optim
        self.optimizers = {b: CausalAdam(blocks[b], lr=getattr(o, f"lr_{b}"),
                                         betas=cast(tuple[float, float], tuple(o.betas)), eps=o.eps,
                                         ratio_clamp=o.ratio_clamp) for b in BLOCKS if blocks.get(b)}
        self.schedulers = {b: make_scheduler(opt, o.halve_every) for b, opt in self.optimizers.items()}
        self.params = [p for b in self.optimizers for p in blocks[b]]
        self.dataset = build_dataset(cfg, self.base)
        self.step = 0
        self.skipped = 0
        self.bad_streak = 0
        self.wall_s = 0.0          # training time summed over resumed runs
        self.last_val: dict[str, Any] = {}  # metric values and "dataset"
        self.resumed_from: Path | None = None
        self.liveness_probe: tuple[list, list] | None = None
        self.liveness_log: CsvLog | None = None

    # --------------------------------------------------------------- state
    def train_state(self) -> dict:
        return {
            "optimizers": {b: o.state_dict() for b, o in self.optimizers.items()},
            "schedulers": {b: s.state_dict() for b, s in self.schedulers.items()},
            "objective": self.objective.state_dict(),
            "rng": ckpt.rng_state(),
            "skipped": self.skipped, "bad_streak": self.bad_streak, "wall_s": self.wall_s,
            "world_size": self.dist.world_size, "last_val": dict(self.last_val),
            "config": to_dict(self.cfg),
        }

    def save(self) -> None:
        """Checkpoint (rank 0 writes; every rank waits so none runs ahead of a half-written file)."""
        if self.dist.is_main:
            ckpt.save_checkpoint(self.out_dir, self.step, self.model, self.train_state(), self.cfg.run.keep_ckpts)
        self.dist.barrier()

    def resume(self, prefix: Path) -> None:
        """Continue from checkpoint `prefix`: weights, optimisers, schedules, Objective, RNG, data position."""
        tensors, state = ckpt.read_checkpoint(prefix)
        ckpt.load_weights(self.model, tensors, prefix)
        missing = set(self.optimizers) ^ set(state["optimizers"])
        if missing:
            raise TrainingError(f"{prefix}: optimiser blocks {sorted(missing)} differ from this model config")
        for b, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][b])
            self.schedulers[b].load_state_dict(state["schedulers"][b])
        self.objective.load_state_dict(state["objective"])
        self.step = int(state["step"])
        self.skipped, self.bad_streak = int(state["skipped"]), int(state["bad_streak"])
        self.wall_s, self.last_val = float(state["wall_s"]), dict(state["last_val"])
        ckpt.set_rng_state(state["rng"])
        self._seed_rank(self.step)  # only rank 0's RNG is stored; the others start a fresh stream
        self.resumed_from = prefix

    def _seed_rank(self, step: int) -> None:
        """Ranks > 0 draw their model noise from their own stream; rank 0 keeps the 1-process stream."""
        if self.dist.rank > 0:
            torch.manual_seed(self.cfg.seed + 7919 * step + self.dist.rank)

    # ---------------------------------------------------------------- loop
    def _loader(self) -> DataLoader:
        from causalsr.data.datasets import collate

        d = self.cfg.data
        sampler = GlobalBatchSampler(len(cast(Sized, self.dataset)), d.batch_size, self.dist.rank, self.dist.world_size,
                                     self.cfg.seed, start=self.step)
        self.batches_per_epoch = sampler.per_epoch
        extra: dict[str, Any] = (dict(persistent_workers=True, prefetch_factor=d.prefetch_factor)
                                 if d.num_workers > 0 else {})
        # Own generator: building the loader must not draw from the global RNG that resume restores.
        return DataLoader(_EpochIndexed(self.dataset), batch_sampler=sampler, num_workers=d.num_workers,
                          collate_fn=collate, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.cfg.seed), **extra)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def _sync_objective(self) -> None:
        """Average the Objective's float state (Eq. 24 running sums/weights) over ranks so weights agree."""
        state = self.objective.state_dict()
        leaves: list[tuple[dict, str]] = []

        def walk(node):
            for k, v in node.items():
                if isinstance(v, dict):
                    walk(v)
                elif isinstance(v, float):
                    leaves.append((node, k))

        walk(state)
        if not leaves:
            return
        values = torch.tensor([n[k] for n, k in leaves], dtype=torch.float64)
        values = self.dist.all_sum(values.to(self.device)).cpu() / self.dist.world_size
        for (n, k), v in zip(leaves, values.tolist()):
            n[k] = v
        self.objective.load_state_dict(state)

    def train_step(self, batch: dict) -> tuple[dict[str, torch.Tensor], dict[str, float], bool]:
        """One iteration of Algorithm 2; returns (terms, weights, applied). A non-finite step is skipped."""
        t = self.step
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)
        out = self.objective(batch, t, self.cfg.run.total_steps)
        total = cast(torch.Tensor, sum(out.block_losses.values()))  # at least one block loss
        total.backward()
        if self.dist.enabled:
            self.dist.average_gradients(self.params)
            self._sync_objective()
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        flag = torch.tensor([0.0 if (math.isfinite(float(total.detach())) and math.isfinite(float(norm))) else 1.0],
                            device=self.device)
        applied = self.dist.all_sum(flag).item() == 0  # every rank skips together
        if applied:
            for o in self.optimizers.values():
                o.step()
            self.model.momentum_update(self.cfg.loss.momentum)  # line 20
            self.bad_streak = 0
        else:
            for o in self.optimizers.values():
                o.zero_grad(set_to_none=True)
            self.skipped += 1
            self.bad_streak += 1
        with warnings.catch_warnings():
            if not applied:  # torch warns when a scheduler steps past a skipped optimiser step; intended here
                warnings.simplefilter("ignore", UserWarning)
            for s in self.schedulers.values():  # line 21: the LR follows the iteration count
                s.step()
        self.step += 1
        terms = {k: v.detach() for k, v in out.terms.items()}
        terms["total"] = total.detach()
        return terms, dict(out.weights), applied

    def _stop_requested(self, started: float) -> bool:
        """All ranks agree to stop when any has passed run.time_limit_minutes."""
        limit = self.cfg.run.time_limit_minutes
        if limit <= 0:
            return False
        flag = torch.tensor([1.0 if time.monotonic() - started > limit * 60 else 0.0], device=self.device)
        return self.dist.all_sum(flag).item() > 0

    def fit(self) -> dict:
        """Train to run.total_steps (or the time limit); checkpoint and export; returns a summary."""
        cfg, run, main = self.cfg, self.cfg.run, self.dist.is_main
        started = time.monotonic()
        wall_at_start = self.wall_s
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            resume_step = self.step if self.resumed_from is not None else None
            log = CsvLog(self.out_dir / "train_log.csv", resume_step)
            val_log = CsvLog(self.out_dir / "val_log.csv", resume_step)
            tb = _tensorboard(self.out_dir / "tensorboard")
        do_val = bool(run.val_dataset)  # the same on every rank: all of them meet at the validation barrier
        val_name: str | None = None
        val_images: list[ValImage] = []
        if main and do_val:
            assert run.val_dataset is not None  # do_val
            val_name, val_images = load_val_set(run.val_dataset, cfg.model.scale, run.val_max_images, self.base)
        loader = self._loader()
        it = iter(loader)
        bar = tqdm(total=run.total_steps, initial=self.step, disable=not main, dynamic_ncols=True,
                   unit="it", mininterval=1.0, desc="train")
        win_sums: dict[str, torch.Tensor] = {}
        win_counts: dict[str, int] = {}
        win_steps, win_start, last_val_step = 0, time.monotonic(), -1
        last_ckpt = self.step if self.resumed_from is not None else None
        weights: dict[str, float] = {}
        self.model.train()
        reason = "total_steps"
        try:
            while self.step < run.total_steps:
                if self._stop_requested(started):
                    reason = f"time limit ({run.time_limit_minutes:g} min)"
                    break
                batch = self._to_device(next(it))
                try:
                    terms, weights, _ = self.train_step(batch)
                except RuntimeError as e:
                    if _is_oom(e):
                        raise TrainingError(
                            f"out of memory at step {self.step + 1} (batch {cfg.data.batch_size}, patch "
                            f"{cfg.data.patch_size}); lower data.batch_size or data.patch_size, e.g. "
                            f"--set data.batch_size={max(cfg.data.batch_size // 2, self.dist.world_size)}") from None
                    raise
                if self.bad_streak >= run.max_bad_steps:
                    raise TrainingError(
                        f"stopped: {self.bad_streak} consecutive steps with non-finite loss or gradients "
                        f"(step {self.step}, {self.skipped} skipped in all); lower optim.lr_* or check the data")
                for k, v in terms.items():  # some terms exist only every cf_every steps
                    win_sums[k] = win_sums.get(k, 0.0) + v
                    win_counts[k] = win_counts.get(k, 0) + 1
                win_steps += 1
                bar.update(1)
                if self.step % run.log_every == 0 or self.step == run.total_steps:
                    # All ranks take part in the reduction; rank 0 writes.
                    names = sorted(win_sums)
                    sums = torch.stack([torch.as_tensor(win_sums[k], dtype=torch.float64) / win_counts[k]
                                        for k in names]).to(self.device)
                    vals = (self.dist.all_sum(sums) / self.dist.world_size).tolist()
                    elapsed = time.monotonic() - win_start
                    sps = win_steps * cfg.data.batch_size / max(elapsed, 1e-9)
                    if main:
                        row: dict[str, float | torch.Tensor] = {
                            "step": self.step, "epoch": (self.step - 1) // self.batches_per_epoch,
                            "wall_s": round(self.wall_s + time.monotonic() - started, 3),
                            "samples_per_s": round(sps, 3), "skipped": self.skipped}
                        row.update({f"loss_{k}": v for k, v in zip(names, vals)})
                        row.update({f"w_{k}": v for k, v in weights.items()})
                        row.update({f"lr_{b}": s.get_last_lr()[0] for b, s in self.schedulers.items()})
                        log.write(row)
                        if tb is not None:
                            for k, value in row.items():
                                if k != "step":
                                    tb.add_scalar(k, float(value), self.step)
                        shown = {k: f"{v:.4g}" for k, v in zip(names, vals) if k in ("rec", "total")}
                        bar.set_postfix(**shown, sps=f"{sps:.1f}", refresh=False)
                    win_sums, win_counts, win_steps, win_start = {}, {}, 0, time.monotonic()
                if do_val and run.val_every > 0 and self.step % run.val_every == 0:
                    self._validate(val_name, val_images, val_log if main else None, bar)
                    last_val_step = self.step
                if run.ckpt_every > 0 and self.step % run.ckpt_every == 0:
                    self.wall_s = wall_at_start + time.monotonic() - started
                    self.save()
                    last_ckpt = self.step
        finally:
            bar.close()
            del it  # stops DataLoader workers
        self.wall_s = wall_at_start + time.monotonic() - started
        if do_val and last_val_step != self.step:
            self._validate(val_name, val_images, val_log if main else None, None)
        if last_ckpt != self.step:
            self.save()
        export = None
        if main:
            export = self.out_dir / "export" / f"causalsr_x{cfg.model.scale}"
            ckpt.export_inference(self.model, export, self.export_meta(val_name))
            plotted = _plot_losses(self.out_dir / "train_log.csv", self.out_dir / "train_loss.png")
            if not plotted:
                print("causalsr train: matplotlib not installed; loss curves are in train_log.csv only", flush=True)
            if tb is not None:
                tb.close()
            print(f"causalsr train: stopped at step {self.step} ({reason}); {self.skipped} non-finite steps "
                  f"skipped; export {export}.safetensors", flush=True)
        self.dist.barrier()
        return {"step": self.step, "skipped": self.skipped, "val": dict(self.last_val), "export": export,
                "reason": reason}

    def _validate(self, name: str | None, images: list[ValImage], log: CsvLog | None, bar) -> None:
        """Rank 0 measures; the others wait at the barrier."""
        if self.dist.is_main:
            assert log is not None  # rank 0 keeps the validation log
            t0 = time.monotonic()
            self.last_val = {**validate(self.model, images, self.cfg.model.scale, self.device), "dataset": name}
            log.write({"step": self.step, "dataset": name, "psnr_y": self.last_val["psnr"],
                       "ssim_y": self.last_val["ssim"], "n_images": len(images),
                       "seconds": round(time.monotonic() - t0, 2)})
            msg = f"val {name} x{self.cfg.model.scale} step {self.step}: PSNR-Y {self.last_val['psnr']:.3f} dB, " \
                  f"SSIM-Y {self.last_val['ssim']:.4f}"
            (bar.write if bar is not None else print)(msg)
            self._log_liveness(bar)
        self.dist.barrier()

    def _log_liveness(self, bar) -> None:
        """Training health (issue 13): `causalsr inspect`'s numbers into liveness_log.csv; dead parts said aloud."""
        if self.cfg.model.plain or self.cfg.run.liveness_images <= 0:
            return
        from causalsr.evaluation.liveness import liveness_report, probe_images

        if self.liveness_probe is None:
            self.liveness_probe = probe_images(self.cfg.model.scale, n=self.cfg.run.liveness_images)
        lrs, hrs = self.liveness_probe
        report = liveness_report(self.model, [x.to(self.device) for x in lrs], [x.to(self.device) for x in hrs])
        if self.liveness_log is None:
            self.liveness_log = CsvLog(self.out_dir / "liveness_log.csv", self.step if self.resumed_from else None)
        self.liveness_log.write({"step": self.step, **{k: v["value"] for k, v in report["parts"].items()
                                                       if v["value"] is not None}})
        if report["failed"]:
            (bar.write if bar is not None else print)(
                f"liveness step {self.step}: below threshold: {', '.join(report['failed'])} (liveness_log.csv)")

    def export_meta(self, val_name: str | None) -> dict:
        """Training metadata stored beside the exported weights."""
        d = self.cfg.data
        device = device_name(self.device)
        return {
            "training": {
                "preset": self.preset,
                "data": {"train_roots": list(d.train_roots), "paired_lr": d.paired_lr, "paired_hr": d.paired_hr,
                         "patch_size": d.patch_size, "batch_size": d.batch_size, "sampler": to_dict(d.sampler)},
                "steps": self.step, "skipped_steps": self.skipped, "seed": self.cfg.seed,
                "val": {"dataset": val_name, **{k: v for k, v in self.last_val.items() if k != "dataset"}}
                if self.last_val else None,
                "wall_time_s": round(self.wall_s, 1),
                "machine": {"device": device, "cpu_count": os.cpu_count(), "processes": self.dist.world_size,
                            "torch": torch.__version__, "python": platform.python_version()},
                "config": to_dict(self.cfg),
            }
        }
