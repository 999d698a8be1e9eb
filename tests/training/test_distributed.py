"""Data-parallel training: 2 gloo processes equal 1 process with the same global batch."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from causalsr.training import checkpoint as ckpt
from causalsr.training.config import TrainConfig
from causalsr.yaml_config import load_config
from helpers import REPO, SMOKE, write_images


def settings(train: Path, out: Path, **extra) -> list[str]:
    base = {"data.train_roots": f"[{train}]", "data.repeat": 2, "data.num_workers": 0, "data.batch_size": 4,
            "data.sampler.p_clean": 1.0, "data.sampler.p_preset": 0.0, "run.val_dataset": "null",
            "run.out_dir": str(out), "run.log_every": 1, "run.total_steps": 5, "run.ckpt_every": 0}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    """The plain model's objective is deterministic and a per-sample mean, so the match is exact."""
    train = write_images(tmp_path / "train", 6, 48)
    val = write_images(tmp_path / "val", 1, 64, seed=1)  # rank-0 validation mid-run and at the end
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        extra = {"model.plain": "true", "run.val_dataset": str(val), "run.val_every": 2, "run.ckpt_every": 3}
        sets = sum((["--set", s] for s in settings(train, out, **extra)), [])
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               "-m", "causalsr", "train", "--config", SMOKE] + sets
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[n], _ = ckpt.read_checkpoint(ckpt.find_latest_valid(out))
    assert runs[1].keys() == runs[2].keys()
    for k in runs[1]:
        torch.testing.assert_close(runs[2][k], runs[1][k], rtol=0, atol=1e-6, msg=k)
    assert any(not torch.equal(a, b) for a, b in zip(runs[1].values(), ckpt.weights_state(_plain_init(train)).values()))


def _plain_init(train):
    from causalsr.models.causalsr import CausalSR

    cfg = load_config(TrainConfig, SMOKE, settings(train, Path("unused"), **{"model.plain": "true"}))
    torch.manual_seed(cfg.seed)
    return CausalSR(cfg.model)


def _worker(rank: int, world: int, port: int, train: str, out: str, queue) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from causalsr.training.distributed import init_distributed
    from causalsr.training.trainer import Trainer

    cfg = load_config(TrainConfig, SMOKE, settings(Path(train), Path(out), **{"run.total_steps": 4}))
    dist = init_distributed(timeout_minutes=2)
    try:
        trainer = Trainer(cfg, dist)
        trainer.fit()
        flat = torch.cat([p.detach().reshape(-1) for p in trainer.params])
        queue.put((rank, flat.numpy(), trainer.objective.state_dict()))
    finally:
        dist.close()


@pytest.mark.slow
def test_full_causal_objective_keeps_ranks_in_sync(tmp_path):
    """All blocks (phi, theta, psi, disc) and the Eq. 24 state stay identical across ranks."""
    train = write_images(tmp_path / "train", 6, 48)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").Queue()
    procs = mp.start_processes(_worker, args=(2, port, str(train), str(tmp_path / "out"), queue), nprocs=2,
                               start_method="spawn", join=False)
    results = {}
    try:
        for _ in range(2):  # read before joining: a child cannot exit while its queued data is unread
            rank, params, state = queue.get(timeout=150)
            results[rank] = (params, state)
    finally:
        while not procs.join(timeout=30):
            pass
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    assert ckpt.find_latest_valid(tmp_path / "out").name == "step_00000004"
