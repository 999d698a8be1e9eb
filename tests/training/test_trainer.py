"""Algorithm 2 loop end to end: smoke preset, loss falls, exact resume after a crash, non-finite guard."""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from causalsr.cli.main import main
from causalsr.training import checkpoint as ckpt
from causalsr.training.config import TrainConfig
from causalsr.training.trainer import GlobalBatchSampler, Trainer, TrainingError
from causalsr.yaml_config import load_config
from helpers import SMOKE, write_images


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_images(root / "train", 6, 48), write_images(root / "val", 1, 64, seed=1)


def overrides(data, out: Path, **extra) -> list[str]:
    train, val = data
    base = {"data.train_roots": f"[{train}]", "data.repeat": 2, "data.num_workers": 0,
            "data.sampler.p_clean": 1.0, "data.sampler.p_preset": 0.0,
            "run.val_dataset": str(val), "run.out_dir": str(out), "run.log_every": 1}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def read_log(out: Path) -> list[dict]:
    with open(out / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_batch_sampler_shards_the_same_global_batch():
    one = iter(GlobalBatchSampler(10, 4, 0, 1, seed=3))
    two = [iter(GlobalBatchSampler(10, 4, r, 2, seed=3)) for r in range(2)]
    for _ in range(5):  # crosses epochs (2 batches per epoch)
        assert next(one) == next(two[0]) + next(two[1])
    resumed = iter(GlobalBatchSampler(10, 4, 0, 1, seed=3, start=3))
    fresh = iter(GlobalBatchSampler(10, 4, 0, 1, seed=3))
    for _ in range(3):
        next(fresh)
    assert next(resumed) == next(fresh)


@pytest.mark.slow
def test_smoke_preset_runs_and_restoration_loss_falls(data, tmp_path):
    out = tmp_path / "run"
    args = overrides(data, out, **{"run.total_steps": 30, "optim.lr_theta": 2e-3})
    assert main(["train", "--config", SMOKE, "-o", str(out)] + sum((["--set", a] for a in args), [])) == 0
    rec = [float(r["loss_rec"]) for r in read_log(out)]
    assert len(rec) == 30
    assert np.mean(rec[-5:]) < 0.8 * np.mean(rec[:5])
    with open(out / "val_log.csv", newline="") as f:
        val = list(csv.DictReader(f))
    assert val and math.isfinite(float(val[-1]["psnr_y"]))
    with open(out / "liveness_log.csv", newline="") as f:  # training health logged with each validation
        health = list(csv.DictReader(f))
    assert health[-1]["step"] == "30" and 0.0 <= float(health[-1]["trunk_cond_live"]) <= 1.0
    assert float(health[-1]["dout_dz_noise"]) >= 0.0
    assert (out / "export" / "causalsr_x4.safetensors").is_file()
    from causalsr.models.model_file import load_pretrained
    model, meta = load_pretrained(out / "export" / "causalsr_x4")
    assert meta["training"]["steps"] == 30 and meta["training"]["preset"] == "smoke"
    # A second fresh run into the same folder is refused rather than mixing runs (nothing done: status 2).
    assert main(["train", "--config", SMOKE, "-o", str(out)]) == 2


def assert_same_run(out_a: Path, out_b: Path, steps: int) -> None:
    """Run b logged steps 1..steps with run a's losses, weights and learning rates, and ended with a's weights."""
    rows_a, rows_b = read_log(out_a), read_log(out_b)
    assert [r["step"] for r in rows_b] == [str(s) for s in range(1, steps + 1)]
    for ra, rb in zip(rows_a, rows_b):
        for k in ra:
            if k.startswith(("loss_", "w_", "lr_")):
                assert ra[k] == rb[k], (ra["step"], k)
    wa, _ = ckpt.read_checkpoint(ckpt.find_latest_valid(out_a))
    wb, _ = ckpt.read_checkpoint(ckpt.find_latest_valid(out_b))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


class CrashAt:
    """Objective wrapper that raises at a given iteration (a deterministic stand-in for a kill)."""

    def __init__(self, objective, step):
        self.objective, self.step = objective, step

    def __call__(self, batch, step, total):
        if step == self.step:
            raise KeyboardInterrupt("simulated crash")
        return self.objective(batch, step, total)

    def state_dict(self):
        return self.objective.state_dict()

    def load_state_dict(self, state):
        self.objective.load_state_dict(state)


@pytest.mark.slow
def test_crash_and_resume_auto_matches_uninterrupted_run(data, tmp_path):
    extra = {"run.total_steps": 10, "run.ckpt_every": 4, "run.keep_ckpts": 2, "loss.t_update": 3}
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    cfg_a = load_config(TrainConfig, SMOKE, overrides(data, out_a, **extra))
    Trainer(cfg_a, preset="smoke").fit()
    wall = [float(r["wall_s"]) for r in read_log(out_a)]
    total = json.loads((out_a / "export" / "causalsr_x4.json").read_text())["training"]["wall_time_s"]
    # the log's wall_s is the training time so far: after a checkpoint it must not count time twice
    assert wall == sorted(wall) and wall[-1] <= total + 0.1

    cfg_b = load_config(TrainConfig, SMOKE, overrides(data, out_b, **extra))
    crashing = Trainer(cfg_b, preset="smoke")
    crashing.objective = CrashAt(crashing.objective, 6)  # iteration 7: after the step-4 checkpoint
    with pytest.raises(KeyboardInterrupt):
        crashing.fit()
    assert ckpt.find_latest_valid(out_b).name == "step_00000004"
    args = sum((["--set", a] for a in overrides(data, out_b, **extra)), [])
    assert main(["train", "--config", SMOKE, "--resume", "auto"] + args) == 0

    assert_same_run(out_a, out_b, 10)


@pytest.mark.slow
def test_kill_9_after_first_checkpoint_then_resume_matches_unkilled_run(data, tmp_path):
    """A real SIGKILL of `python -m causalsr train`, then `--resume auto`: same steps, losses and weights."""
    extra = {"run.total_steps": 40, "run.ckpt_every": 4, "run.keep_ckpts": 2, "loss.t_update": 3}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out, *more):
        args = sum((["--set", a] for a in overrides(data, out, **extra)), [])
        return [sys.executable, "-m", "causalsr", "train", "--config", SMOKE, *more, *args]

    out_a, out_b = tmp_path / "a", tmp_path / "b"
    subprocess.run(command(out_a), env=env, check=True, capture_output=True)
    proc = subprocess.Popen(command(out_b), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while ckpt.find_latest_valid(out_b) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = len(read_log(out_b))
    assert 4 <= killed_at < 40
    subprocess.run(command(out_b, "--resume", "auto"), env=env, check=True, capture_output=True)

    assert_same_run(out_a, out_b, 40)  # logged steps after the checkpoint are redone, not duplicated


class NaNAt:
    """Objective wrapper whose losses become NaN at the given iterations."""

    def __init__(self, objective, steps):
        self.objective, self.steps = objective, set(steps)

    def __call__(self, batch, step, total):
        out = self.objective(batch, step, total)
        if step in self.steps or "all" in self.steps:
            out.block_losses["theta"] = out.block_losses["theta"] * float("nan")
        return out

    def state_dict(self):
        return self.objective.state_dict()

    def load_state_dict(self, state):
        self.objective.load_state_dict(state)


def test_non_finite_step_is_skipped_and_counted(data, tmp_path):
    extra = {"run.total_steps": 4, "run.val_dataset": "null", "model.plain": "true"}
    cfg = load_config(TrainConfig, SMOKE, overrides(data, tmp_path / "nan", **extra))
    trainer = Trainer(cfg)
    trainer.objective = NaNAt(trainer.objective, {2})
    seen = {}
    original = trainer.train_step

    def spy(batch):
        before = [p.detach().clone() for p in trainer.params]
        result = original(batch)
        seen[trainer.step] = all(torch.equal(a, b) for a, b in zip(before, trainer.params))
        return result

    trainer.train_step = spy
    summary = trainer.fit()
    assert summary["skipped"] == 1 and summary["step"] == 4
    assert seen == {1: False, 2: False, 3: True, 4: False}  # iteration t=2 is step 3
    assert all(torch.isfinite(p).all() for p in trainer.params)


def test_too_many_bad_steps_stop_with_a_clear_message(data, tmp_path):
    extra = {"run.total_steps": 10, "run.max_bad_steps": 3, "run.val_dataset": "null", "model.plain": "true"}
    cfg = load_config(TrainConfig, SMOKE, overrides(data, tmp_path / "bad", **extra))
    trainer = Trainer(cfg)
    trainer.objective = NaNAt(trainer.objective, {"all"})
    with pytest.raises(TrainingError, match="3 consecutive steps with non-finite"):
        trainer.fit()


def test_time_limit_stops_cleanly_with_checkpoint_and_export(data, tmp_path):
    out = tmp_path / "timed"
    extra = {"run.total_steps": 1000, "run.time_limit_minutes": "0.000001", "run.val_dataset": "null",
             "model.plain": "true"}
    summary = Trainer(load_config(TrainConfig, SMOKE, overrides(data, out, **extra))).fit()
    assert summary["reason"].startswith("time limit") and summary["step"] < 1000
    assert ckpt.find_latest_valid(out) is not None
    assert (out / "export" / "causalsr_x4.json").is_file()


def test_out_of_memory_gives_advice(data, tmp_path):
    cfg = load_config(TrainConfig, SMOKE, overrides(data, tmp_path / "oom", **{"run.val_dataset": "null",
                                                                               "model.plain": "true"}))
    trainer = Trainer(cfg)

    def oom(batch, step, total):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.objective = oom
    with pytest.raises(TrainingError, match="out of memory.*lower data.batch_size or data.patch_size"):
        trainer.fit()


def test_warm_start_copies_same_shaped_tensors_across_scales(tmp_path):
    from causalsr.models.model_file import save_pretrained
    from causalsr.training.trainer import warm_start
    from helpers import tiny_model

    x4, x2 = tiny_model(4), tiny_model(2)
    torch.nn.init.normal_(x4.restorer.head.weight)
    save_pretrained(x4, tmp_path / "x4")
    copied, total = warm_start(x2, tmp_path / "x4")
    assert 0 < copied < total
    assert torch.equal(x2.restorer.head.weight, x4.restorer.head.weight)
    assert x2.restorer.upsample[0].weight.shape != x4.restorer.upsample[0].weight.shape
    with pytest.raises(TrainingError, match="not found"):
        warm_start(x2, tmp_path / "missing")


def test_warm_start_from_a_hub_folder_keeps_the_runs_own_encoder_and_training_parts(tmp_path):
    """A bundled-style folder (fp16 encoder, no training-only parts) gives every other tensor; the run keeps its
    package encoder (its checkpoints leave it out) and fresh training-only parts."""
    from causalsr.models.file_format import ENCODER_PREFIX, TRAINING_ONLY
    from causalsr.models.model_file import save_folder
    from causalsr.training.trainer import warm_start
    from helpers import tiny_model

    source, target = tiny_model(), tiny_model(inference=False)
    save_folder(source, tmp_path / "x2")
    encoder = {k: v.clone() for k, v in target.semantic.state_dict().items()}
    copied, total = warm_start(target, tmp_path / "x2")
    state = target.state_dict()
    kept = [k for k in state if k.startswith((ENCODER_PREFIX, *TRAINING_ONLY))]
    assert copied == total - len(kept) and kept
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items()
               if not k.startswith((ENCODER_PREFIX, *TRAINING_ONLY)))
    assert all(torch.equal(target.semantic.state_dict()[k], v) for k, v in encoder.items())


def test_warm_start_grows_input_channels_so_the_grown_model_computes_the_same(tmp_path):
    """A restorer that gained factor-map inputs keeps the old weights in the leading channels, zeros in the new."""
    from causalsr.models.causalsr import CausalSR
    from causalsr.models.model_file import save_pretrained
    from causalsr.training.trainer import warm_start
    from helpers import tiny_config

    torch.manual_seed(0)
    old = CausalSR(tiny_config(2)).eval()
    torch.nn.init.normal_(old.restorer.upsample[0].weight, std=0.05)
    save_pretrained(old, tmp_path / "old")
    args = dict(old.cfg.backbone_args, factor_maps=3)
    grown = CausalSR(tiny_config(2, backbone_args=args)).eval()
    warm_start(grown, tmp_path / "old")
    assert grown.restorer.head.weight.shape[1] == old.restorer.head.weight.shape[1] + 3
    assert torch.equal(grown.restorer.head.weight[:, :3], old.restorer.head.weight)
    assert not grown.restorer.head.weight[:, 3:].any()
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(grown(lr), old(lr), atol=1e-6)


def test_reinit_gives_a_part_fresh_weights_and_rejects_unknown_parts():
    from causalsr.training.trainer import reinitialise
    from helpers import tiny_model

    model = tiny_model(2)
    last = model.h_psi.net[-1]
    torch.nn.init.constant_(last.bias, -55.0)  # a collapsed h_psi: sigmoid(-55) ~ 1e-24
    reinitialise(model, "h_psi")
    assert last.bias.abs().max() < 1.0
    with pytest.raises(TrainingError, match="no part 'nope'"):
        reinitialise(model, "nope")
