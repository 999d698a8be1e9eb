"""The paper's Tables II, III and V re-made from committed records (issue 16): one command per table.

    python3 benchmarks/tables.py table2 [--docs docs/benchmarks.md]    # benchmarks/results/table2 + peers
    python3 benchmarks/tables.py table3 [--docs docs/benchmarks.md]    # benchmarks/results/table3
    python3 benchmarks/tables.py profile [benchmarks/results/profile.json] [--docs docs/benchmarks.md]

Each prints Markdown; `--docs` also rewrites the table's generated block in that file (`doc_blocks`).
The records are `causalsr eval` / `causalsr profile` JSONs (date, machine, commit and command in their
`meta`), written by benchmarks/tables_measure.sh and benchmarks/profile.sh. A cell with no record reads
"not measured" with the reason `tables_measure.sh` left (`<record>.skipped`), or "not run yet".
Published rows come from `published.py`, each marked with its source.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from doc_blocks import replace_block
from published import DATASETS, TABLE2, TABLE5, TABLE5_SOURCE

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = {"causalsr": "CausalSR (ours: bundled, blind)", "causalsr-told": "CausalSR (ours: bundled, told 'clean')",
         "bicubic": "bicubic", "dat-light": "DAT-light",
         "span": "SPAN ch48", "realesrgan": "Real-ESRGAN x4plus"}
SCALES_OF = {"span": (2, 4), "realesrgan": (4,)}
TABLE3_SETS = ("Set14", "BSD100", "Urban100")
TABLE3_DEGS = ("blur", "noise", "jpeg", "blur+noise+jpeg")


def load_records(*folders: Path) -> dict[tuple[str, int, str, str], dict]:
    """{(method, scale, dataset, degradation): result with its record's meta} from `causalsr eval` JSONs."""
    out: dict[tuple[str, int, str, str], dict] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            doc = json.loads(path.read_text())
            results = doc.get("results") if isinstance(doc.get("results"), list) else []
            for r in results:
                if "psnr" in r and doc.get("meta", {}).get("grey_convention", "basicsr") == "basicsr":
                    method = r["method"] + ("-told" if r.get("condition") == "oracle" else "")
                    key = (method, r["scale"], r["dataset"], r["degradation"])
                    out.setdefault(key, {**r, "meta": doc["meta"]})
    return out


def missing(folder: Path, method: str, scale: int, dataset: str, degradation: str | None = None) -> str:
    """Why a cell has no record: no model at that scale, the measuring script's skip note, or not run yet."""
    if scale not in SCALES_OF.get(method, (2, 3, 4)):
        return f"no x{scale} model"
    stem = f"{method}-x{scale}-{dataset}" + (f"-{degradation.replace('+', '-')}" if degradation else "")
    note = folder / f"{stem}.skipped"
    return f"not measured ({note.read_text().strip()})" if note.is_file() else "not measured (not run yet)"


def _commits(records: dict, method: str, scale: int | None = None) -> str:
    """The commits a method's records were measured at; for ours, those of the bundled weights they used."""
    commits = {(r["meta"]["commit"].removesuffix("+dirty"), k[1]) for k, r in records.items()
               if k[0] == method and scale in (None, k[1])}
    if method.startswith("causalsr"):
        return "weights of " + ", ".join(sorted({_weights_commit(c, s) for c, s in commits}))
    return ", ".join(sorted({c[:12] for c, _ in commits}))


@functools.cache
def _weights_commit(commit: str, scale: int) -> str:
    """The last commit at or before `commit` that changed the bundled x`scale` model file (else `commit`)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    # the model file holds the weights and the model config (the hub layout's config.json is metadata); older layout
    paths = [f"causalsr/weights/x{scale}/model.safetensors", f"causalsr/weights/causalsr_x{scale}.safetensors"]
    try:
        out = subprocess.run(["git", "-C", str(RESULTS.parents[1]), "log", "-1", "--format=%h", commit, "--", *paths],
                             capture_output=True, text=True, timeout=10, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out.strip() or commit[:12]


def table2(folder: Path = RESULTS / "table2") -> str:
    """Table II analogue: measured rows per scale, then the published ones, marked with their sources."""
    records = load_records(folder, RESULTS / "peers")
    head = "| method | " + " | ".join(DATASETS[:-1]) + " | Manga109 (10 of 109 here) | source |"
    out = []
    for s in (2, 3, 4):
        out += [f"**x{s}** (PSNR / SSIM on Y, BasicSR grey convention)", "", head, "|---" * 7 + "|"]
        for m in ("causalsr", "causalsr-told", "bicubic", "dat-light", "span"):
            cells = []
            for d in DATASETS:
                r = records.get((m, s, d, "bicubic"))
                cells.append(f"{r['psnr']:.2f} / {r['ssim']:.4f}" if r else missing(folder, m, s, d))
            commits = _commits(records, m, s)
            out.append(f"| {NAMES[m]} | " + " | ".join(cells) + " | "
                       + (f"measured here ({commits})" if commits else "-") + " |")
        for name, (source, by_scale) in TABLE2.items():
            if s not in by_scale:
                continue
            cells = [f"{c[0]:.2f} / {c[1]:.4f}" if c else "–" for c in by_scale[s]]
            out.append(f"| {name} (published) | " + " | ".join(cells) + f" | {source} |")
        out.append("")
    out.append("Told 'clean': Z's named factors set to the true ones of bicubic LR (no blur, no noise, no JPEG; "
               "`--condition oracle`) instead of the posterior's reading. Published Manga109 values are over all "
               "109 images, the measured ones over the 10 we have: not comparable. The paper's Table II has no x3 "
               "rows.")
    return "\n".join(out)


def _cell3(r: dict | None, reason: str) -> str:
    return f"{r['psnr']:.2f} / {r['ssim']:.4f} / {r['lpips']:.3f}" if r else reason


def table3(folder: Path = RESULTS / "table3") -> str:
    """Table III analogue: per scale, rows (dataset, method), columns the degradations; then who wins."""
    records = load_records(folder)
    methods = ("causalsr", "bicubic", "dat-light", "span", "realesrgan")
    out = []
    for s in (2, 3, 4):
        out += [f"**x{s}** (PSNR / SSIM on Y, LPIPS v0.1 AlexNet; blur = 3x3 sigma 2, noise sigma 15, JPEG 30)", "",
                "| dataset | method | " + " | ".join(TABLE3_DEGS) + " |", "|---" * 6 + "|"]
        for d in TABLE3_SETS:
            for m in methods:
                if s not in SCALES_OF.get(m, (2, 3, 4)):
                    continue
                cells = [_cell3(records.get((m, s, d, g)), missing(folder, m, s, d, g)) for g in TABLE3_DEGS]
                out.append(f"| {d} | {NAMES[m]} | " + " | ".join(cells) + " |")
        out.append("")
    out += wins(records, methods[1:])
    commits = {m: _commits(records, m) for m in methods if _commits(records, m)}
    out += ["", "Records: benchmarks/results/table3/ (commits: "
            + ("; ".join(f"{NAMES[m]} {c}" for m, c in commits.items()) or "none yet") + ")."]
    return "\n".join(out)


def wins(records: dict, peers: tuple[str, ...]) -> list[str]:
    """Issue 16's compound criterion, counted: on jpeg and blur+noise+jpeg, where ours beats each peer."""
    lines = []
    for g in ("jpeg", "blur+noise+jpeg"):
        for p in peers:
            pairs = [(k, records[k], records.get(("causalsr",) + k[1:])) for k in records
                     if k[0] == p and k[3] == g and ("causalsr",) + k[1:] in records]
            if not pairs:
                lines.append(f"- {g}, ours vs {NAMES[p]}: no cell measured for both")
                continue
            psnr = [f"x{k[1]} {k[2]}" for k, r, o in pairs if o["psnr"] > r["psnr"]]
            lpips = [f"x{k[1]} {k[2]}" for k, r, o in pairs if r["lpips"] < o["lpips"]]
            lines.append(f"- {g}, ours vs {NAMES[p]}: higher PSNR in {len(psnr)} of {len(pairs)} cells"
                         f"{' (' + ', '.join(psnr) + ')' if 0 < len(psnr) < len(pairs) else ''}; "
                         f"{NAMES[p]} has the lower LPIPS in {len(lpips)} of {len(pairs)}")
    return lines


def profile(path: Path = RESULTS / "profile.json") -> str:
    """Table V analogue from a `causalsr profile` JSON, the paper's Table V below it as published."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from causalsr.evaluation.profiling import markdown_table

    doc = json.loads(path.read_text())
    w, h = doc["size"]
    meta = doc.get("meta", {})
    commit = meta.get("commit", "?")
    load = " / ".join(f"{v:.1f}" for v in meta.get("load_avg_1min", []))
    out = [markdown_table(doc["rows"], f"{w}x{h}", Path(doc["images"]).name), "",
           f"Finished {meta.get('date', '?')} on {meta.get('machine', '?')}, commit {commit[:12]}"
           f"{' with uncommitted changes' if commit.endswith('+dirty') else ''}, "
           f"{doc['rows'][0].get('threads', '?')} CPU thread(s), 1-minute load average {load or '?'} "
           f"(start / end; other work shared the cores); `{meta.get('command', '')}`.", "",
           f"Published ({TABLE5_SOURCE}), x4, 720p:", "",
           "| method | params (M) | GFLOPs | training memory (GB) | inference memory (GB) | x2 / x3 / x4 (ms) |",
           "|---|---|---|---|---|---|"]
    for name, (p, f, tr, inf, r2, r3, r4) in TABLE5.items():
        out.append(f"| {name} | {p} | {f} | {tr} | {inf} | {r2} / {r3} / {r4} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tables.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", choices=("table2", "table3", "profile"))
    p.add_argument("record", nargs="?", type=Path, help="profile: the JSON (default benchmarks/results/profile.json)")
    p.add_argument("--docs", type=Path, help="also rewrite this table's generated block in the Markdown file")
    args = p.parse_args(argv)
    text = {"table2": table2, "table3": table3}[args.table]() if args.table != "profile" else \
        profile(args.record or RESULTS / "profile.json")
    print(text)
    if args.docs:
        replace_block(args.docs, args.table, text)
    return 0
