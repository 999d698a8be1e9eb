"""Table IV analogue (issue 16): the ablation's table and verdicts from its evaluation records.

    python3 benchmarks/ablation_report.py benchmarks/results/ablation/eval [benchmarks/results/ablation/gpu_eval] \
        [--json SUMMARY.json] [--docs docs/benchmarks.md]

Reads the `<row>_s<seed>.json` records of `benchmarks/ablation.py eval` (one `causalsr eval` JSON per run).
For each row and degradation, PSNR is first averaged over the datasets both it and the full model were
measured on (equal weight per dataset), per seed. The effect of a part is full minus the row without it,
paired by seed (the same seed gives both runs the same data order): X = the mean of the per-seed
differences and Y its standard error. The verdict reads "helps by X +- Y dB" when X > 2Y, "hurts by ..."
when X < -2Y, else "no measurable effect"; with one seed there is no spread and no verdict. Differences
under 0.1 dB with fewer than 3 seeds are flagged: issue 16 asks a third seed there.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from ablation import ROWS, row_of
from doc_blocks import replace_block

DEGRADATIONS = ("bicubic", "blur+noise+jpeg")
METRICS = ("psnr", "ssim", "lpips")
Cells = dict[tuple[str, str], dict[str, float]]  # (dataset, degradation) -> metric means


def load_runs(folders: list[Path]) -> tuple[dict[str, dict[int, Cells]], dict[str, set[int]]]:
    """({row id: {seed: cells}}, {row id: training steps}) from the run records in `folders`.

    A run recorded in several folders is taken from the first (e.g. the CPU evaluation on every set
    before the GPU machine's evaluation on Set5 alone).
    """
    runs: dict[str, dict[int, Cells]] = {}
    steps: dict[str, set[int]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*_s*.json")):
            try:
                row, seed = row_of(path.stem)
            except ValueError:
                continue
            if seed in runs.get(row.id, {}):
                continue
            doc = json.loads(path.read_text())
            cells = {(r["dataset"], r["degradation"]): {m: r[m] for m in METRICS if m in r} for r in doc["results"]}
            runs.setdefault(row.id, {})[seed] = cells
            steps.setdefault(row.id, set()).add(doc["meta"].get("training"))
    return runs, steps


def dataset_mean(cells: Cells, degradation: str, datasets: list[str], metric: str = "psnr") -> float:
    """`metric` averaged over `datasets` (equal weight) for one degradation."""
    return statistics.fmean(cells[(d, degradation)][metric] for d in datasets)


def shared_datasets(runs: list[Cells], degradation: str) -> list[str]:
    """Datasets measured under `degradation` in every one of `runs`, in first-seen order."""
    first = [d for (d, g) in runs[0] if g == degradation]
    return [d for d in first if all((d, degradation) in c for c in runs)]


def effect(full: dict[int, Cells], row: dict[int, Cells], degradation: str) -> dict[str, Any] | None:
    """Paired effect full - row on PSNR (dataset mean) over the seeds both have; None when none is shared."""
    seeds = sorted(set(full) & set(row))
    if not seeds:
        return None
    datasets = shared_datasets([full[s] for s in seeds] + [row[s] for s in seeds], degradation)
    if not datasets:
        return None
    diffs = [dataset_mean(full[s], degradation, datasets) - dataset_mean(row[s], degradation, datasets)
             for s in seeds]
    x = statistics.fmean(diffs)
    y = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None
    return {"x": x, "y": y, "seeds": seeds, "datasets": datasets, "verdict": verdict(x, y, len(seeds))}


def verdict(x: float, y: float | None, n: int) -> str:
    """Plain words for an effect X +- Y dB measured over `n` paired seeds."""
    if y is None:
        return f"one seed: not judged ({x:+.3f} dB)"
    words = (f"helps by {x:.3f} +- {y:.3f} dB" if x > 2 * y else
             f"hurts by {-x:.3f} +- {y:.3f} dB" if x < -2 * y else
             f"no measurable effect ({x:+.3f} +- {y:.3f} dB)")
    if abs(x) < 0.1 and n < 3:
        words += "; under 0.1 dB with fewer than 3 seeds: a 3rd seed is needed"
    return words


def _cell(values: list[float], fmt: str) -> str:
    if not values:
        return "not measured"
    sd = f" +- {format(statistics.stdev(values), fmt)}" if len(values) > 1 else ""
    return format(statistics.fmean(values), fmt) + sd


def markdown(runs: dict[str, dict[int, Cells]], steps: dict[str, set[int]]) -> str:
    """Per-dataset PSNR table (mean +- sd over seeds), SSIM / LPIPS dataset means, and the verdicts."""
    datasets = list(dict.fromkeys(d for seeds in runs.values() for c in seeds.values() for (d, _) in c))
    lines = ["| row | seeds | steps | degradation | " + " | ".join(f"{d} PSNR" for d in datasets)
             + " | SSIM | LPIPS |", "|---|---|---|---|" + "---|" * (len(datasets) + 2)]
    for row in ROWS:
        seeds = runs.get(row.id, {})
        for g in DEGRADATIONS:
            cells = [_cell([c[(d, g)]["psnr"] for c in seeds.values() if (d, g) in c], ".3f") for d in datasets]
            extra = []
            for m, fmt in (("ssim", ".4f"), ("lpips", ".4f")):
                per_seed = [statistics.fmean(v[m] for (d, gg), v in c.items() if gg == g and m in v)
                            for c in seeds.values() if any(gg == g and m in v for (_, gg), v in c.items())]
                extra.append(_cell(per_seed, fmt))
            n_steps = ", ".join(str(n) for n in sorted(steps.get(row.id, set()), key=str)) or "-"
            lines.append(f"| {row.id} | {len(seeds) or '-'} | {n_steps} | {g} | " + " | ".join(cells + extra) + " |")
    lines += ["", "SSIM and LPIPS: means over the datasets measured, then over seeds.", ""]
    lines += verdict_lines(runs)
    return "\n".join(lines)


def verdict_lines(runs: dict[str, dict[int, Cells]]) -> list[str]:
    """One bullet per row and degradation: what full - row says about the part."""
    full = runs.get("full", {})
    out = []
    for row in ROWS[1:]:
        for g in DEGRADATIONS:
            e = effect(full, runs.get(row.id, {}), g) if full else None
            if e is None:
                out.append(f"- {row.part}, {g}: not measured (no run of both rows)")
                continue
            out.append(f"- {row.part}, {g} (full - {row.id}, PSNR over {', '.join(e['datasets'])}, "
                       f"seeds {', '.join(map(str, e['seeds']))}): {e['verdict']}")
    return out


def summary(runs: dict[str, dict[int, Cells]]) -> dict[str, Any]:
    """The verdicts as data."""
    full = runs.get("full", {})
    return {row.id: {g: effect(full, runs.get(row.id, {}), g) for g in DEGRADATIONS} for row in ROWS[1:]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+",
                   help="folders of run records (benchmarks/ablation.py eval); the first holding a run wins")
    p.add_argument("--json", type=Path, help="write the verdicts as JSON")
    p.add_argument("--docs", type=Path, help="replace the 'ablation' block of this Markdown file")
    args = p.parse_args(argv)
    runs, steps = load_runs(args.folders)
    if not runs:
        print(f"{' '.join(map(str, args.folders))}: no ablation run records (<row>_s<seed>.json)", file=sys.stderr)
        return 2
    text = markdown(runs, steps)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(summary(runs), indent=2) + "\n")
    if args.docs:
        replace_block(args.docs, "ablation", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
