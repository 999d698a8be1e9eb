"""Table IV analogue (issue 16): the equal-budget ablation's rows, its runs at a common step, their evaluation.

    python3 benchmarks/ablation.py rows                      # "ROW PRESET" per line (scripts/gpu_ablation.sh reads it)
    python3 benchmarks/ablation.py collect RUNS -o DIR       # every run's weights at the largest step all runs reached
    python3 benchmarks/ablation.py pack DIR -o OUT           # DIR in tars of <= 15 MiB (a GPU machine's $OUT)
    python3 benchmarks/ablation.py export DIR -o EXPORTS     # inference exports of collected weights
    python3 benchmarks/ablation.py eval EXPORTS -o EVAL [--datasets ...] [--device cuda]
    python3 benchmarks/ablation_report.py EVAL               # the table and the verdicts

A run is a folder `<row>_s<seed>` of `causalsr train` (preset `configs/<preset>.yaml`, `--set seed=<seed>`).
Equal budget means equal steps: `collect` takes every run at the largest step for which all of them hold a
checkpoint, so a run that was slowed down (a shared GPU) or stopped by its time limit still compares like
with like. The collected weights leave out the frozen encoder (as checkpoints do), which keeps them small
enough to leave a GPU machine; `export` rebuilds full inference exports from them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ABSENT = "<absent>"
"""Switch value of a key the row's preset removes (a `!replace`d mapping without it)."""


@dataclass(frozen=True)
class Row:
    """One row of the ablation: its preset and the switch (dotted key -> value) that makes it differ from the base."""

    id: str
    preset: str
    part: str  # what `full - row` measures, for the verdict ("counterfactual learning helps by ...")
    switch: dict[str, Any] = field(default_factory=dict)


ROWS = (
    Row("full", "ablation-base", "(the full model)"),
    Row("no-cf", "ablation-no-cf", "counterfactual learning (CF)", {"model.use_cf": False}),
    Row("no-int", "ablation-no-int", "the intervention mechanism (Int)", {"model.use_int": False}),
    Row("no-sp", "ablation-no-sp", "the structured prior (SP)", {"model.use_sp": False}),
    Row("no-sct", "ablation-no-sct", "semantic contextual translation (SCT)", {"model.use_sct": False}),
    Row("plain", "plain", "all causal parts together", {"model.plain": True}),
    Row("tablei", "ablation-tablei", "our restorer over the Table I backbone",
        {"model.backbone": "tablei", "model.backbone_args.n_feats": ABSENT, "model.backbone_args.n_blocks": ABSENT}),
)
BASE = "ablation-base"
SCALE = 4
LOGS = ("train_log.csv", "val_log.csv", "liveness_log.csv")  # a run's logs that `collect` keeps


def row_of(run: str) -> tuple[Row, int]:
    """(row, seed) of a run name `<row>_s<seed>`; ValueError for another name."""
    row_id, sep, seed = run.rpartition("_s")
    rows = {r.id: r for r in ROWS}
    if not sep or row_id not in rows or not seed.isdigit():
        raise ValueError(f"{run!r} is not an ablation run name <row>_s<seed> (rows: {', '.join(rows)})")
    return rows[row_id], int(seed)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {dotted key: leaf value}."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def preset_difference(preset: str, base: str = BASE, configs: Path = REPO / "configs") -> dict[str, Any]:
    """{dotted key: value in `preset`} for every key where the loaded preset differs from `base` (ABSENT: removed)."""
    from causalsr.yaml_config import load_yaml

    a, b = flatten(load_yaml(configs / f"{preset}.yaml")), flatten(load_yaml(configs / f"{base}.yaml"))
    return {k: a.get(k, ABSENT) for k in sorted(set(a) | set(b)) if a.get(k, ABSENT) != b.get(k, ABSENT)}


# ------------------------------------------------------------------ collect: weights at the common step
def checkpoint_steps(run: Path) -> set[int]:
    """Steps of the complete checkpoints (weights and state) in `<run>/checkpoints`."""
    from causalsr.training.checkpoint import CKPT_DIR

    steps = set()
    for f in (run / CKPT_DIR).glob("step_*.safetensors"):
        step = f.name.split(".")[0].removeprefix("step_")
        if step.isdigit() and f.with_name(f"step_{step}.state.pt").is_file():
            steps.add(int(step))
    return steps


def common_step(runs: list[Path]) -> int:
    """The largest step at which every run holds a checkpoint; ValueError when there is none."""
    shared = set.intersection(*(checkpoint_steps(r) for r in runs)) if runs else set()
    if not shared:
        raise ValueError("no step has a checkpoint in every run: " + ", ".join(
            f"{r.name} {sorted(checkpoint_steps(r))[-3:] or 'none'}" for r in runs))
    return max(shared)


def collect(runs_dir: Path, out: Path, step: int | None = None) -> dict[str, Any]:
    """Copy each run's checkpoint weights at the common step, its config and logs into `out` (flat files)."""
    from causalsr.training.checkpoint import CKPT_DIR, read_checkpoint

    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and _is_run(p.name))
    failed = [r.name for r in runs if not checkpoint_steps(r)]
    runs = [r for r in runs if r.name not in failed]
    step = common_step(runs) if step is None else step
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        prefix = run / CKPT_DIR / f"step_{step:08d}"
        read_checkpoint(prefix)  # verifies the weights against the state's checksum
        shutil.copyfile(prefix.with_suffix(".safetensors"), out / f"{run.name}.safetensors")
        shutil.copyfile(run / "config.yaml", out / f"{run.name}.yaml")
        for log in LOGS:
            if (run / log).is_file():
                shutil.copyfile(run / log, out / f"{run.name}_{log}")
    summary = {"step": step, "runs": [r.name for r in runs], "failed": failed,
               "reached": {r.name: max(checkpoint_steps(r)) for r in runs}}
    (out / "collect.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _is_run(name: str) -> bool:
    try:
        row_of(name)
    except ValueError:
        return False
    return True


def _run_of_file(name: str) -> str:
    """The run a collected file belongs to (`<run>.safetensors`, `<run>.yaml`, `<run>_<log>`), else its stem."""
    for log in LOGS:
        if name.endswith("_" + log):
            return name.removesuffix("_" + log)
    return name.split(".")[0]


def pack(folder: Path, out: Path, max_mb: float = 15.0, max_files: int = 5,
         max_total_mb: float = 60.0) -> tuple[list[Path], list[str]]:
    """`folder`'s files in at most `max_files` tars of at most `max_mb` MiB and `max_total_mb` MiB in all, run by
    run (a run is never split; the defaults fit the device tool's 8 files of 16 MiB, 64 MiB in all).

    Returns the tars and the runs left out (too big to go: evaluate those where they are).
    """
    groups: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file():
            groups.setdefault(_run_of_file(f.name), []).append(f)
    limit = int(max_mb * 2**20)
    bins: list[list[Path]] = []
    sizes: list[int] = []
    left: list[str] = []
    for name, files in sorted(groups.items(), key=lambda kv: -sum(f.stat().st_size for f in kv[1])):
        size = sum(f.stat().st_size for f in files) + 4096 * len(files)
        if sum(sizes) + size > max_total_mb * 2**20:
            left.append(name)
            continue
        fit = next((i for i, s in enumerate(sizes) if s + size <= limit), None)
        if fit is None and len(bins) < max_files and size <= limit:
            bins.append([])
            sizes.append(0)
            fit = len(bins) - 1
        if fit is None:
            left.append(name)
            continue
        bins[fit].extend(files)
        sizes[fit] += size
    out.mkdir(parents=True, exist_ok=True)
    tars = []
    for i, files in enumerate(bins):
        tar = out / f"ablation_part{i}.tar"
        with tarfile.open(tar, "w") as t:
            for f in files:
                t.add(f, arcname=f.name)
        tars.append(tar)
    return tars, left


# ------------------------------------------------------------------ export and evaluate
def export(folder: Path, out: Path, only: list[str] | None = None) -> list[Path]:
    """Inference exports `<out>/<run>/causalsr_x4` from collected weights (`collect`'s files)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from causalsr.models.causalsr import CausalSR
    from causalsr.training.checkpoint import export_inference, load_weights
    from causalsr.training.config import TrainConfig
    from causalsr.yaml_config import load_config, to_dict

    done = []
    for weights in sorted(folder.glob("*.safetensors")):
        run = weights.stem
        if not _is_run(run) or (only and run not in only):
            continue
        cfg = load_config(TrainConfig, folder / f"{run}.yaml")
        model = CausalSR(cfg.model)
        load_weights(model, load_file(str(weights)), weights)
        with safe_open(str(weights), "pt") as f:
            step = int((f.metadata() or {}).get("step", -1))
        row, seed = row_of(run)
        meta = {"training": {"preset": row.preset, "steps": step, "seed": seed, "config": to_dict(cfg)},
                "ablation": {"row": row.id, "run": run}}
        path = out / run / f"causalsr_x{cfg.model.scale}"
        export_inference(model, path, meta)
        done.append(path)
    return done


def evaluate_exports(exports: Path, out: Path, datasets: list[str], degradations: list[str], metrics: list[str],
                     device: str = "cpu", only: list[str] | None = None) -> list[Path]:
    """`causalsr eval` of every export under `exports` into `<out>/<run>.json`; runs already there are skipped."""
    import torch

    from causalsr.evaluation.harness import evaluate, run_meta
    from causalsr.evaluation.methods import CausalSRMethod

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for export_dir in sorted(p for p in exports.iterdir() if p.is_dir() and _is_run(p.name)):
        target = out / f"{export_dir.name}.json"
        if (only and export_dir.name not in only) or target.is_file():
            continue
        stem = next(export_dir.glob("causalsr_x*.safetensors")).with_suffix("")
        method = CausalSRMethod(stem, device=torch.device(device))
        results = evaluate(method, datasets, [SCALE], degradations, tuple(metrics), "basicsr", progress=False,
                           metrics_device=device)
        command = " ".join(["python3 benchmarks/ablation.py eval", str(exports), "--datasets", *datasets,
                            "--degradation", *degradations, "--metrics", *metrics, "--device", device])
        meta = run_meta(command, "basicsr")
        meta.update(device=device, run=export_dir.name,
                    training=json.loads(stem.with_suffix(".json").read_text()).get("training", {}).get("steps"))
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps({"results": [r.to_dict() for r in results], "meta": meta}, indent=1))
        tmp.replace(target)
        print(f"{export_dir.name}: " + "; ".join(f"{r.dataset} {r.degradation} {r.mean('psnr'):.3f}"
                                                  for r in results), flush=True)
        written.append(target)
    return written


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("rows", help="print 'ROW PRESET' per line")
    c = sub.add_parser("collect", help="weights of every run at the common step, configs and logs")
    c.add_argument("runs", type=Path)
    c.add_argument("-o", "--output", type=Path, required=True)
    c.add_argument("--step", type=int, help="this step instead of the largest common one")
    k = sub.add_parser("pack", help="a folder in tars of <= 15 MiB; prints the runs left out")
    k.add_argument("folder", type=Path)
    k.add_argument("-o", "--output", type=Path, required=True)
    k.add_argument("--max-files", type=int, default=5)
    x = sub.add_parser("export", help="inference exports of collected weights")
    x.add_argument("folder", type=Path)
    x.add_argument("-o", "--output", type=Path, required=True)
    x.add_argument("--runs", nargs="+", help="only these runs")
    e = sub.add_parser("eval", help="evaluate every export (one causalsr-eval JSON per run)")
    e.add_argument("exports", type=Path)
    e.add_argument("-o", "--output", type=Path, required=True)
    e.add_argument("--datasets", nargs="+", default=["Set5", "Set14", "BSD100", "Urban100"])
    e.add_argument("--degradation", nargs="+", default=["bicubic", "blur+noise+jpeg"])
    e.add_argument("--metrics", nargs="+", default=["psnr", "ssim", "lpips"])
    e.add_argument("--device", default="cpu")
    e.add_argument("--runs", nargs="+", help="only these runs")
    args = p.parse_args(argv)
    if args.cmd == "rows":
        print("\n".join(f"{r.id} {r.preset}" for r in ROWS))
    elif args.cmd == "collect":
        summary = collect(args.runs, args.output, args.step)
        print(f"common step {summary['step']}; runs {len(summary['runs'])}; failed: {summary['failed'] or 'none'}")
    elif args.cmd == "pack":
        tars, left = pack(args.folder, args.output, max_files=args.max_files)
        print(" ".join(left))  # the runs that did not fit (stdout: the script reads it)
        print(f"{len(tars)} tars; left out: {', '.join(left) or 'none'}", file=sys.stderr)
    elif args.cmd == "export":
        for path in export(args.folder, args.output, args.runs):
            print(path)
    else:
        evaluate_exports(args.exports, args.output, args.datasets, args.degradation, args.metrics, args.device,
                         args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
