"""`TrainConfig`: the dataclass tree a training preset (configs/*.yaml) fills.

Load with `causalsr.yaml_config.load_config(TrainConfig, path, overrides)`; every key
of a preset must exist here, so a typo fails loudly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from causalsr.data.degradations import SamplerConfig
from causalsr.models.config import ModelConfig
from causalsr.training.losses import LossConfig


@dataclass
class DataConfig:
    """Training data. Relative paths resolve against the cwd, then the preset's repository root."""

    train_roots: list = field(default_factory=list)  # HR folders, degraded on the fly (or dataset names)
    paired_lr: str | None = None      # paired LR folder: used instead of train_roots when set with paired_hr
    paired_hr: str | None = None
    scale: int | None = None          # None = model.scale (they must agree)
    patch_size: int = 192             # HR patch side
    batch_size: int = 16              # GLOBAL batch, split evenly over processes
    num_workers: int = 2              # DataLoader workers (persistent); 0 = load in the main process
    prefetch_factor: int = 4          # batches prefetched per worker
    repeat: int = 1                   # passes over each image per epoch (tiny datasets)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


@dataclass
class OptimConfig:
    """Algorithm 2's three block optimisers (plus the discriminator's), Eq. 26, and the LR schedule."""

    lr_phi: float = 2e-4
    lr_theta: float = 2e-4
    lr_psi: float = 2e-4
    lr_disc: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    ratio_clamp: bool = True          # Eq. 26's min(1, ||g_{t-1}|| / ||g_t||)
    halve_every: int = 200_000        # LR halved every this many steps (<= 0: constant)


@dataclass
class RunConfig:
    """Length, logging, validation and checkpointing of a run."""

    total_steps: int = 600_000
    log_every: int = 100
    val_every: int = 5_000            # 0 = no validation during training (a final one still runs)
    val_dataset: str | None = "Set5"  # benchmark name or HR folder; None = no validation
    val_max_images: int = 0           # 0 = all images
    liveness_images: int = 4          # probe images for the liveness report at each validation (0 = none)
    ckpt_every: int = 5_000
    keep_ckpts: int = 3
    out_dir: str = "runs/causalsr"
    max_bad_steps: int = 20           # stop after this many consecutive non-finite steps
    time_limit_minutes: float = 0.0   # > 0: stop cleanly (checkpoint + export) after this long
    dist_timeout_minutes: float = 30.0  # collective timeout: a dead rank fails the others after this
    deterministic: bool = False       # torch.use_deterministic_algorithms (slower; exact resume on GPU)
    init_from: str | None = None      # warm start: copy every same-shaped tensor from this checkpoint
                                      # (e.g. an x4 model for an x2/x3 run; scale-specific layers stay new)
    # after the warm start, fresh weights for these parts (e.g. a collapsed h_psi)
    reinit: list = field(default_factory=list)
    # after that, the SCT and context trunk of this model, grafted without changing the restorer's output
    # (`warmstart.graft_context`): revives a context that collapsed to a constant
    context_from: str | None = None


@dataclass
class TrainConfig:
    """A whole training run: model, objective, data, optimiser, run control."""

    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def repo_root_of(config_path: str | Path) -> Path:
    """The repository holding a preset: nearest ancestor with pyproject.toml or .git, else its folder."""
    here = Path(config_path).resolve().parent
    for d in (here, *here.parents):
        if (d / "pyproject.toml").exists() or (d / ".git").exists():
            return d
    return here


def resolve_path(path: str, base: Path | None) -> Path:
    """`path` as given if it exists relative to the cwd (or is absolute), else relative to `base`."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or base is None:
        return p
    alt = base / p
    return alt if alt.exists() else p
