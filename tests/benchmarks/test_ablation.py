"""The equal-budget ablation (issue 16): presets are the base plus one switch; runs are compared at a common
step; verdicts follow the seed spread; and the GPU script's pipeline runs end to end on the CPU."""
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from ablation import ABSENT, ROWS, collect, common_step, pack, preset_difference, row_of
from ablation_report import effect, load_runs, markdown, verdict
from PIL import Image

from causalsr.training.checkpoint import save_checkpoint
from helpers import REPO


@pytest.mark.parametrize("row", ROWS[1:], ids=lambda r: r.id)
def test_each_row_is_the_base_plus_exactly_its_switch(row):
    assert preset_difference(row.preset) == row.switch


def test_the_base_is_the_act_recipe_with_a_step_budget():
    diff = preset_difference("ablation-base", "gpu-act")
    assert set(diff) == {"run.total_steps", "run.time_limit_minutes", "run.out_dir"}
    assert diff["run.time_limit_minutes"] == 0 and diff["run.total_steps"] > 0


def test_the_table_i_row_drops_the_efficient_backbones_keys():
    diff = preset_difference("ablation-tablei")
    assert diff["model.backbone"] == "tablei" and diff["model.backbone_args.n_feats"] == ABSENT


def _fake_run(root, name, steps):
    run = root / name
    model = torch.nn.Linear(2, 2)
    for s in steps:
        save_checkpoint(run, s, model, {"note": s}, keep=0)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "train_log.csv").write_text("step\n")
    return run


def test_collect_takes_every_run_at_the_largest_step_all_reached(tmp_path):
    runs = tmp_path / "runs"
    a = _fake_run(runs, "full_s0", [25, 50, 75, 100])
    b = _fake_run(runs, "plain_s0", [25, 50, 60])  # stopped by its time limit at 60
    (runs / "no-cf_s0").mkdir()  # crashed before its first checkpoint
    assert common_step([a, b]) == 50
    summary = collect(runs, tmp_path / "out")
    assert summary["step"] == 50 and summary["failed"] == ["no-cf_s0"]
    assert summary["reached"] == {"full_s0": 100, "plain_s0": 60}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "collect.json", "full_s0.safetensors", "full_s0.yaml", "full_s0_train_log.csv",
        "plain_s0.safetensors", "plain_s0.yaml", "plain_s0_train_log.csv"]
    with pytest.raises(ValueError, match="no step"):
        common_step([a, _fake_run(runs, "no-sp_s0", [30])])


def test_pack_keeps_runs_whole_and_leaves_out_what_cannot_go(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, mb in (("full_s0", 6), ("full_s1", 6), ("tablei_s0", 20), ("plain_s0", 1)):
        (src / f"{name}.safetensors").write_bytes(b"\0" * int(mb * 2**20))
        (src / f"{name}_train_log.csv").write_text("step\n")
    tars, left = pack(src, tmp_path / "out", max_mb=8, max_files=2, max_total_mb=10)
    assert left == ["tablei_s0", "full_s1"]  # too big to go at all; then over the total
    members = [sorted(tarfile.open(t).getnames()) for t in tars]
    assert members == [["full_s0.safetensors", "full_s0_train_log.csv", "plain_s0.safetensors",
                        "plain_s0_train_log.csv"]]


def _cells(psnr):
    return {("Set5", "bicubic"): {"psnr": psnr, "ssim": 0.9, "lpips": 0.1},
            ("Set14", "bicubic"): {"psnr": psnr - 2, "ssim": 0.8, "lpips": 0.2}}


def test_effect_is_paired_by_seed_and_judged_by_its_spread():
    full = {0: _cells(30.0), 1: _cells(30.4)}
    assert effect(full, {0: _cells(29.5), 1: _cells(29.9)}, "bicubic")["verdict"].startswith("helps by 0.500 +- 0.000")
    mixed = effect(full, {0: _cells(30.3), 1: _cells(30.0)}, "bicubic")  # differences -0.3 and +0.4
    assert mixed["verdict"].startswith("no measurable effect (+0.050 +- 0.350 dB)")
    assert "3rd seed" in mixed["verdict"]
    assert effect(full, {0: _cells(30.5), 1: _cells(30.9)}, "bicubic")["verdict"].startswith("hurts by 0.500")
    assert effect(full, {1: _cells(30.0)}, "bicubic")["verdict"] == "one seed: not judged (+0.400 dB)"
    assert effect(full, {5: _cells(30.0)}, "bicubic") is None
    assert verdict(0.3, 0.01, 2) == "helps by 0.300 +- 0.010 dB"


def test_row_names_round_trip():
    assert [row_of(f"{r.id}_s3") for r in ROWS] == [(r, 3) for r in ROWS]
    with pytest.raises(ValueError):
        row_of("full-s0")


@pytest.mark.slow
def test_gpu_script_runs_end_to_end_on_the_cpu(tmp_path):
    """scripts/gpu_ablation.sh with a tiny model, then the CPU side: export, eval, report."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for folder, n, size in (("train/T91", 2, 64), ("train/BSD200", 2, 64), ("benchmarks/Set5/HR", 2, 48)):
        (data / folder).mkdir(parents=True)
        for i in range(n):
            y, x = np.mgrid[0:size, 0:size + 8]
            img = np.stack([np.sin(x / rng.uniform(2, 9) + c) * np.cos(y / rng.uniform(2, 9)) for c in range(3)], -1)
            Image.fromarray(((img * 0.5 + 0.5) * 255).astype(np.uint8)).save(data / folder / f"im{i}.png")
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "DEVICE": "cpu", "SMOKE": "1", "STEPS": "4", "CKPT": "2", "SEEDS": "0 1",
           "ROWS": "full plain", "DATA": str(data), "OUT": str(out), "WORK": str(work), "PYTHON": sys.executable,
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_ablation.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "common step 4; runs 4; failed: none" in (out / "summary.txt").read_text()
    here = tmp_path / "here"
    for tar in out.glob("ablation_part*.tar"):
        tarfile.open(tar).extractall(here)
    script = [sys.executable, str(REPO / "benchmarks" / "ablation.py")]
    subprocess.run([*script, "export", str(here), "-o", str(tmp_path / "exports")], env=env, check=True)
    subprocess.run([*script, "eval", str(tmp_path / "exports"), "-o", str(tmp_path / "eval"), "--datasets",
                    str(data / "benchmarks" / "Set5" / "HR"), "--metrics", "psnr", "ssim"], env=env, check=True)
    runs, steps = load_runs([tmp_path / "eval"])
    assert sorted(runs) == ["full", "plain"] and steps == {"full": {4}, "plain": {4}}
    assert all(20 < runs["full"][s][("Set5", "bicubic")]["psnr"] < 60 for s in (0, 1))
    text = markdown(runs, steps)
    assert "all causal parts together, bicubic (full - plain, PSNR over Set5, seeds 0, 1):" in text
