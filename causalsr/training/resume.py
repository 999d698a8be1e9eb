"""A trainer's full state for exact resume: what `Trainer.save` writes beside the weights, and how `resume` reads it.

The files themselves (atomic writes, rotation, verification) are `checkpoint`'s job.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from causalsr.training import checkpoint as ckpt
from causalsr.training.errors import TrainingError
from causalsr.yaml_config import to_dict

if TYPE_CHECKING:
    from causalsr.training.trainer import Trainer


def train_state(t: Trainer) -> dict:
    """Everything but the weights: optimiser moments, LR schedules, the Objective's Eq. 24 state, RNG, counters."""
    return {
        "optimizers": {b: o.state_dict() for b, o in t.optimizers.items()},
        "schedulers": {b: s.state_dict() for b, s in t.schedulers.items()},
        "objective": t.objective.state_dict(),
        "rng": ckpt.rng_state(),
        "skipped": t.skipped, "bad_streak": t.bad_streak, "wall_s": t.wall_s,
        "world_size": t.dist.world_size, "last_val": dict(t.last_val),
        "config": to_dict(t.cfg),
    }


def save(t: Trainer) -> None:
    """Checkpoint (rank 0 writes; every rank waits so none runs ahead of a half-written file)."""
    if t.dist.is_main:
        ckpt.save_checkpoint(t.out_dir, t.step, t.model, train_state(t), t.cfg.run.keep_ckpts)
    t.dist.barrier()


def restore(t: Trainer, prefix: Path) -> None:
    """Continue from checkpoint `prefix`: weights, optimisers, schedules, Objective, RNG, step (data position)."""
    tensors, state = ckpt.read_checkpoint(prefix)
    ckpt.load_weights(t.model, tensors, prefix)
    missing = set(t.optimizers) ^ set(state["optimizers"])
    if missing:
        raise TrainingError(f"{prefix}: optimiser blocks {sorted(missing)} differ from this model config")
    for b, o in t.optimizers.items():
        o.load_state_dict(state["optimizers"][b])
        t.schedulers[b].load_state_dict(state["schedulers"][b])
    t.objective.load_state_dict(state["objective"])
    t.step = int(state["step"])
    t.skipped, t.bad_streak = int(state["skipped"]), int(state["bad_streak"])
    t.wall_s, t.last_val = float(state["wall_s"]), dict(state["last_val"])
    ckpt.set_rng_state(state["rng"])
