"""Alg. 2 line 4: the training set and the global batches each rank draws from it.

The sample sequence depends only on the seed and the global batch count, which
is what a checkpoint stores, so a resumed run sees the batches an uninterrupted
one would have seen.
"""
from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import cast

import torch
from torch.utils.data import Dataset

from causalsr.training.config import TrainConfig, resolve_path
from causalsr.training.errors import TrainingError


class EpochIndexed(Dataset):
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
