"""Calibrate a trained model's degradation posterior for whole-image analysis.

Joint training (Algorithm 2) sees the posterior only on training patches
(24 LR pixels for cpu-small x4): there it learns what one patch says about the
degradation, and its posterior mean is shrunk towards the training prior
wherever one patch is ambiguous. `analyze` and `upscale` pool the features of
up to 8x8 such crops of a whole image (`analysis_crop`), which hold far more
evidence, but the head still answers as if it had seen one patch: noise
sigma 15 read as about 7.

This stage fine-tunes only the posterior, on larger LR images that go through
the same crop-and-pool path as a whole image at inference, with the
named-factor NLL. A second term keeps the mean of the unnamed dimensions of Z,
which the restorer was trained on, where the original posterior put it.
Listed deviation 33 in docs/paper-mapping.md.

With ``blur_twins`` every training image is also shown with its blur toggled
(the paper's 3x3 blur added where it had none, removed where it had one; same
crop, noise draw and JPEG quality), so the only difference within a pair is the
blur, and ``w_rank`` adds a paired logistic term asking the twin with the blur
to read more blur than the one without. The paper's mild blur is otherwise
confounded with image content (deviation 35).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from causalsr.data.datasets import HRPatchDataset, collate
from causalsr.data.degradations import PAPER_BLUR_KSIZE, PAPER_BLUR_SIGMA, DegradationParams, SamplerConfig, degrade
from causalsr.factors import FACTOR_NAMES, N_NAMED, factor_index
from causalsr.training.losses import named_factor_nll

if TYPE_CHECKING:
    from causalsr.models.posterior import DegradationPosterior


@dataclass
class PosteriorFitConfig:
    """One posterior calibration run (keys are YAML keys of configs/posterior-fit*.yaml)."""

    train_roots: list = field(default_factory=list)  # HR folders or dataset names, degraded on the fly
    lr_patch: int = 64        # LR side of each training image; several analysis crops fit in it
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3          # Adam, cosine-decayed to 0 over the steps
    warmup_steps: int = 0     # linear warm-up of the rate first (new zero-initialised blocks need it)
    grad_clip: float = 0.0    # clip the gradient norm to this; 0 = off
    w_keep: float = 1.0       # weight of the unnamed-dims anchor to the original posterior mean
    seed: int = 0
    num_workers: int = 1
    log_every: int = 100
    device: str = "auto"      # "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N"
    blur_twins: bool = False  # show each image also with its blur toggled (batch_size counts pairs then)
    w_rank: float = 0.0       # weight of the paired term: the blurred twin reads more blur (needs blur_twins)
    rank_scale: float = 0.05  # normalised blur difference that counts as one logit in that term
    mean_levels: dict = field(default_factory=dict)  # then correct analyze's readings: {factor: levels}, each
                              # factor alone at each level on whole training images (mean_calibration.py)
    mean_image_step: int = 1  # ... on every n-th training image
    interval_draws: int = 0   # then calibrate analyze's +-: degradations per whole training image; 0 = off
    sampler: SamplerConfig = field(default_factory=SamplerConfig)


class PosteriorFitError(ValueError):
    """A calibration run that cannot do what it is asked (one line, names the problem)."""


def resolve_device(name: str) -> torch.device:
    """``PosteriorFitConfig.device`` as a torch device; a one-line PosteriorFitError if it cannot be used."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise PosteriorFitError(f"device {name!r} is not a torch device ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PosteriorFitError(f"device {name!r} asked for, but torch sees no CUDA device here")
    return device


BLUR = factor_index("blur")


class BlurTwins(Dataset):
    """Each sample of ``base`` followed by its blur twin: the same HR crop and degradation draws, with the
    paper's 3x3 blur added if the sample had no blur, or its blur removed if it had one."""

    def __init__(self, base: HRPatchDataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        sample = self.base[index]
        params = DegradationParams.from_dict(sample["params"])
        if params.blur_sigma is None:
            twin = dataclasses.replace(params, blur_sigma=(PAPER_BLUR_SIGMA, PAPER_BLUR_SIGMA, 0.0),
                                       blur_ksize=PAPER_BLUR_KSIZE)
        else:
            twin = dataclasses.replace(params, blur_sigma=None, blur_ksize=0)
        return [sample, {**sample, "lr": degrade(sample["hr"], twin), "factors": torch.from_numpy(twin.factors()),
                         "params": twin.to_dict()}]


def collate_twins(batch: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Pairs -> one batch in which samples 2k and 2k+1 are twins."""
    return collate([s for pair in batch for s in pair])


def blur_rank_loss(blur_mean: torch.Tensor, blur_true: torch.Tensor, scale: float) -> torch.Tensor:
    """Paired logistic loss on twins (rows 2k, 2k+1).

    -log sigmoid((mean of the blurred - mean of the other) / scale).
    """
    mean, true = blur_mean.view(-1, 2), blur_true.view(-1, 2)
    sign = torch.where(true[:, 0] > true[:, 1], 1.0, -1.0)
    return F.softplus(-sign * (mean[:, 0] - mean[:, 1]) / scale).mean()


def rate_factor(step: int, steps: int, warmup_steps: int = 0) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``steps``.

    Cosine decay because the NLL of single samples is noisy, and a constant rate
    ends wherever the noise left it.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))


def check_config(cfg: PosteriorFitConfig, model: torch.nn.Module) -> None:
    """PosteriorFitError (one line) when the calibration cannot run with `cfg` on `model`."""
    crop = cast("DegradationPosterior", model.posterior).analysis_crop
    if not crop or cfg.lr_patch <= crop:
        raise PosteriorFitError(f"posterior calibration needs posterior_crop > 0 and lr_patch > it "
                                f"(got posterior_crop {crop}, lr_patch {cfg.lr_patch})")
    if not cfg.train_roots:
        raise PosteriorFitError("posterior calibration needs train_roots (HR image folders)")
    if cfg.w_rank and not cfg.blur_twins:
        raise PosteriorFitError("w_rank needs blur_twins: the paired term compares twins")
    for name, levels in cfg.mean_levels.items():
        if name not in FACTOR_NAMES or len(levels) < 2:
            raise PosteriorFitError(f"mean_levels: {name!r} needs to be a named factor ({', '.join(FACTOR_NAMES)}) "
                                    f"with at least 2 levels (got {levels})")


def _loader(post: DegradationPosterior, cfg: PosteriorFitConfig, device: torch.device) -> DataLoader:
    """HR patches degraded on the fly (as blur twins when asked), one epoch long enough for every step."""
    data = HRPatchDataset(cfg.train_roots, post.scale, cfg.lr_patch * post.scale, cfg.sampler, seed=cfg.seed)
    data.repeat = math.ceil(cfg.steps * cfg.batch_size / len(data.images))  # one epoch holds every step
    return DataLoader(BlurTwins(data) if cfg.blur_twins else data, batch_size=cfg.batch_size, shuffle=True,
                      collate_fn=collate_twins if cfg.blur_twins else collate, drop_last=True,
                      num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed))


def _loss(post: DegradationPosterior, reference: DegradationPosterior, batch: dict, cfg: PosteriorFitConfig,
          device: torch.device) -> torch.Tensor:
    """Named-factor NLL + keeping the free dims where `reference` had them (+ the blur twins' rank term)."""
    lr, hr, factors = (batch[k].to(device, non_blocking=True) for k in ("lr", "hr", "factors"))
    # The same hidden-X draw for both, so the anchor compares like with like (and for both twins).
    drop = torch.rand(lr.shape[0] // 2 if cfg.blur_twins else lr.shape[0], device=device) < post.p_unknown
    if cfg.blur_twins:
        drop = drop.repeat_interleave(2)
    try:
        q = post(lr, hr, drop_hr=drop)
        with torch.no_grad():
            ref_free = reference(lr, hr, drop_hr=drop).mean[:, N_NAMED:]
        loss = named_factor_nll(q, factors) + cfg.w_keep * (q.mean[:, N_NAMED:] - ref_free).pow(2).sum(1).mean()
        if cfg.w_rank:
            loss = loss + cfg.w_rank * blur_rank_loss(q.mean[:, BLUR], factors[:, BLUR], cfg.rank_scale)
    except ValueError:  # torch.distributions rejects a non-finite mean or covariance
        loss = torch.tensor(math.nan)
    return loss


def fit_posterior(model: torch.nn.Module, cfg: PosteriorFitConfig, log=print) -> list[float]:
    """Fine-tune ``model.posterior`` in place (every other parameter untouched); returns the loss per step.

    Needs a model with an analysis crop (``posterior_crop``) smaller than
    ``cfg.lr_patch``, so that each training image is pooled over several
    crops exactly as a whole image is in `analyze`. Leaves the model in eval
    mode with gradients off and on the CPU, ready to export.
    """
    post = cast("DegradationPosterior", model.posterior)
    check_config(cfg, model)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device)
    reference = copy.deepcopy(post).eval().requires_grad_(False)
    model.eval().requires_grad_(False)
    post.train().requires_grad_(True)
    loader: Iterable[dict] = _loader(post, cfg, device) if cfg.steps > 0 else []  # 0 steps: intervals only
    opt = torch.optim.Adam(post.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: rate_factor(step, cfg.steps, cfg.warmup_steps))
    losses: list[float] = []
    for batch in loader:
        loss = _loss(post, reference, batch, cfg, device)
        value = loss.item()
        if not math.isfinite(value):
            raise PosteriorFitError(f"posterior fit diverged at step {len(losses) + 1} of {cfg.steps} "
                                    "(non-finite loss); "
                                    f"lower lr (now {cfg.lr:g}) or set warmup_steps / grad_clip")
        opt.zero_grad()
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(post.parameters(), cfg.grad_clip)
        opt.step()
        schedule.step()
        losses.append(value)
        if log is not None and len(losses) % cfg.log_every == 0:
            recent = losses[-cfg.log_every:]
            log(f"posterior fit step {len(losses)}/{cfg.steps} loss {sum(recent) / len(recent):.3f}")
        if len(losses) >= cfg.steps:
            break
    model.cpu().eval()
    return losses


__all__ = ["BlurTwins", "PosteriorFitConfig", "PosteriorFitError", "blur_rank_loss", "check_config", "collate_twins",
           "fit_posterior", "rate_factor", "resolve_device"]
