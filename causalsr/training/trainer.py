"""Algorithm 2: the CausalSR training loop.

Per iteration t (Alg. 2 line numbers):
  4     next global batch (this rank's share of it; `sampling`)
  5-7   `Objective` (counterfactuals, posterior, interventions; Eq. 24 weights inside)
  9,13,17  one backward of the sum of the gradient-isolated block losses,
        then gradient averaging over ranks, then a non-finite guard
  10-11,14-15,18-19  one `CausalAdam` step per block (phi, theta, psi, disc)
  20    momentum-encoder EMA
  21    LR schedule (Eq. 26's ratio clamp lives in the optimiser)

Around it, each in its own module: the data and batch order (`sampling`), rank-0
logging (`runlog`: tqdm, CSV, optional TensorBoard), validation and liveness
(`validation`), exact resume (`resume`, over `checkpoint`'s files), warm start
(`warmstart`), a time limit here, and the final inference export.
"""
from __future__ import annotations

import math
import os
import platform
import time
import warnings
from collections.abc import Sized
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from causalsr.training import checkpoint as ckpt
from causalsr.training import resume as resume_state
from causalsr.training.config import TrainConfig
from causalsr.training.distributed import DistContext
from causalsr.training.errors import TrainingError
from causalsr.training.optim import CausalAdam, make_scheduler
from causalsr.training.runlog import LossWindow, TrainLog, device_name
from causalsr.training.sampling import EpochIndexed, GlobalBatchSampler, build_dataset
from causalsr.training.validation import Validator
from causalsr.training.warmstart import graft_context_from, reinitialise, warm_start
from causalsr.yaml_config import to_dict

BLOCKS = ("phi", "theta", "psi", "disc")

# Older import paths (tests, scripts): these names moved to the modules above.
__all__ = ["BLOCKS", "Trainer", "TrainingError", "GlobalBatchSampler", "build_dataset", "device_name",
           "reinitialise", "warm_start"]


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


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
        if cfg.run.context_from:
            graft_context_from(self.model, Path(cfg.run.context_from))
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
        self._clock = (time.monotonic(), 0.0)  # (started, wall_s before this run), set by fit

    # --------------------------------------------------------------- state
    def train_state(self) -> dict:
        """What a checkpoint stores beside the weights (`resume.train_state`)."""
        return resume_state.train_state(self)

    def save(self) -> None:
        """Checkpoint (rank 0 writes; every rank waits so none runs ahead of a half-written file)."""
        resume_state.save(self)

    def resume(self, prefix: Path) -> None:
        """Continue from checkpoint `prefix`: weights, optimisers, schedules, Objective, RNG, data position."""
        resume_state.restore(self, prefix)
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
        return DataLoader(EpochIndexed(self.dataset), batch_sampler=sampler, num_workers=d.num_workers,
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
        run, main = self.cfg.run, self.dist.is_main
        self._clock = (time.monotonic(), self.wall_s)  # (started, wall_s before this run)
        resume_step = self.step if self.resumed_from is not None else None
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        log = TrainLog(self.out_dir, resume_step) if main else None
        val = Validator(self.cfg, self.out_dir, self.base, main, resume_step)
        it = iter(self._loader())
        bar = tqdm(total=run.total_steps, initial=self.step, disable=not main, dynamic_ncols=True,
                   unit="it", mininterval=1.0, desc="train")
        window = LossWindow()
        last_val_step, last_ckpt = -1, self.step if self.resumed_from is not None else None
        self.model.train()
        reason = "total_steps"
        try:
            while self.step < run.total_steps:
                if self._stop_requested(self._clock[0]):
                    reason = f"time limit ({run.time_limit_minutes:g} min)"
                    break
                self._iterate(next(it), window, log, bar)
                if val.due(self.step):
                    self._validate(val, bar)
                    last_val_step = self.step
                if run.ckpt_every > 0 and self.step % run.ckpt_every == 0:
                    self.wall_s = self._elapsed()
                    self.save()
                    last_ckpt = self.step
        finally:
            bar.close()
            del it  # stops DataLoader workers
        self.wall_s = self._elapsed()
        if val.enabled and last_val_step != self.step:
            self._validate(val, None)
        if last_ckpt != self.step:
            self.save()
        export = self._export(val.name, log, reason) if log is not None else None
        self.dist.barrier()
        return {"step": self.step, "skipped": self.skipped, "val": dict(self.last_val), "export": export,
                "reason": reason}

    def _elapsed(self) -> float:
        """Training seconds over all resumed runs, up to now."""
        started, wall_at_start = self._clock
        return wall_at_start + time.monotonic() - started

    def _iterate(self, batch: dict, window: LossWindow, log: TrainLog | None, bar) -> None:
        """One guarded training step, added to the loss window; a log row every run.log_every steps."""
        run = self.cfg.run
        try:
            terms, weights, _ = self.train_step(self._to_device(batch))
        except RuntimeError as e:
            if _is_oom(e):
                d = self.cfg.data
                raise TrainingError(
                    f"out of memory at step {self.step + 1} (batch {d.batch_size}, patch "
                    f"{d.patch_size}); lower data.batch_size or data.patch_size, e.g. "
                    f"--set data.batch_size={max(d.batch_size // 2, self.dist.world_size)}") from None
            raise
        if self.bad_streak >= run.max_bad_steps:
            raise TrainingError(
                f"stopped: {self.bad_streak} consecutive steps with non-finite loss or gradients "
                f"(step {self.step}, {self.skipped} skipped in all); lower optim.lr_* or check the data")
        window.add(terms)
        bar.update(1)
        if self.step % run.log_every == 0 or self.step == run.total_steps:
            self._log_window(window, weights, log, bar)

    def _log_window(self, window: LossWindow, weights: dict[str, float], log: TrainLog | None, bar) -> None:
        """All ranks take part in the reduction; rank 0 writes the row."""
        means = window.means(self.dist, self.device)
        sps = window.samples_per_s(self.cfg.data.batch_size)
        if log is not None:
            row: dict[str, float | torch.Tensor] = {
                "step": self.step, "epoch": (self.step - 1) // self.batches_per_epoch,
                "wall_s": round(self._elapsed(), 3),
                "samples_per_s": round(sps, 3), "skipped": self.skipped}
            row.update({f"loss_{k}": v for k, v in means.items()})
            row.update({f"w_{k}": v for k, v in weights.items()})
            row.update({f"lr_{b}": s.get_last_lr()[0] for b, s in self.schedulers.items()})
            log.write(row)
            shown = {k: f"{v:.4g}" for k, v in means.items() if k in ("rec", "total")}
            bar.set_postfix(**shown, sps=f"{sps:.1f}", refresh=False)
        window.reset()

    def _validate(self, val: Validator, bar) -> None:
        """Rank 0 measures; the others wait at the barrier."""
        if self.dist.is_main:
            self.last_val = val.measure(self.model, self.step, self.device, self.resumed_from is not None, bar)
        self.dist.barrier()

    def _export(self, val_name: str | None, log: TrainLog, reason: str) -> Path:
        """Rank 0's end of the run: the inference export, the loss plot, the closing line."""
        export = self.out_dir / "export" / f"causalsr_x{self.cfg.model.scale}"
        ckpt.export_inference(self.model, export, self.export_meta(val_name))
        log.close()
        print(f"causalsr train: stopped at step {self.step} ({reason}); {self.skipped} non-finite steps "
              f"skipped; export {export}.safetensors", flush=True)
        return export

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
