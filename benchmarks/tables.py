"""Print the docs/benchmarks.md tables from the JSONs of bicubic.sh / peers.sh / causalsr.sh.

    python3 benchmarks/tables.py [outputs/benchmarks]
    python3 benchmarks/tables.py gains MODEL.json [MODEL.json ...] --baseline BICUBIC.json [BICUBIC.json ...]
    python3 benchmarks/tables.py table2|table3|profile [--docs docs/benchmarks.md]   # paper_tables.py

`gains` prints each model row beside the baseline row measured with the same
dataset, scale, degradation, image count and grey convention, and the difference.

Published values: RCAN Table 3 for bicubic, DAT supplementary Table 2 for
DAT-light (shared/REFERENCE_NUMBERS.md sections 1 and 2). SPAN has none.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from published import DATASETS, TABLE2

PUBLISHED = {"bicubic": TABLE2["bicubic"][1], "dat-light": TABLE2["DAT-light"][1]}  # what `main` compares with


def row(r: dict) -> str:
    pub = PUBLISHED.get(r["method"], {}).get(r["scale"])
    p = pub[DATASETS.index(r["dataset"])] if pub and r["dataset"] in DATASETS else None
    subset = r["dataset"] == "Manga109" and r["n_images"] < 109
    name = f"{r['dataset']} ({r['n_images']} of 109)" if subset else r["dataset"]
    measured = f"{r['psnr']:.3f} / {r['ssim']:.4f}"
    if p is None:
        published, diff = "–", "–"
    else:
        published = f"{p[0]:.2f} / {p[1]:.4f}"
        diff = "not comparable" if subset else f"{r['psnr'] - p[0]:+.3f} / {r['ssim'] - p[1]:+.4f}"
    return f"| {r['method']} | x{r['scale']} | {name} | {r['n_images']} | {measured} | {published} | {diff} |"


def main(folder: str = "outputs/benchmarks") -> None:
    docs = [json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json"))]
    # Only `causalsr eval` JSONs: a list of results with PSNR (profile and analyze JSONs are shaped differently).
    results = [r for d in docs if isinstance(d.get("results"), list) for r in d["results"] if "psnr" in r]
    order = lambda r: (r["method"], r["scale"], DATASETS.index(r["dataset"]) if r["dataset"] in DATASETS else 99)  # noqa: E731
    print("| method | scale | dataset | images | measured | published | difference |")
    print("|---|---|---|---|---|---|---|")
    for r in sorted(results, key=order):
        print(row(r))


def gains(args: list[str]) -> None:
    """Model rows beside the matching baseline rows (e.g. bicubic) and the PSNR / SSIM gain."""
    if "--baseline" not in args:
        raise SystemExit("usage: tables.py gains MODEL.json [...] --baseline BASELINE.json [...]")
    i = args.index("--baseline")
    models, baseline_files = args[:i], args[i + 1:]

    def load(path: str) -> list[dict]:
        data = json.loads(Path(path).read_text())
        conv = data.get("meta", {}).get("grey_convention")
        return [{**r, "grey": conv} for r in data["results"]]

    def key(r: dict) -> tuple:
        return r["dataset"], r["scale"], r["degradation"], r["n_images"], r["grey"]

    base = {key(r): r for f in baseline_files for r in load(f)}
    print("| model | dataset | scale | degradation | images | PSNR / SSIM | baseline | gain (dB / SSIM) |")
    print("|---|---|---|---|---|---|---|---|")
    for path in models:
        for r in load(path):
            b = base.get(key(r))
            ref = f"{b['psnr']:.2f} / {b['ssim']:.4f}" if b else "not measured"
            gain = f"{r['psnr'] - b['psnr']:+.2f} / {r['ssim'] - b['ssim']:+.4f}" if b else "–"
            print(f"| {r['method']} | {r['dataset']} | x{r['scale']} | {r['degradation']} | {r['n_images']} | "
                  f"{r['psnr']:.2f} / {r['ssim']:.4f} | {ref} | {gain} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["gains"]:
        gains(sys.argv[2:])
    elif sys.argv[1:2] and sys.argv[1] in ("table2", "table3", "profile"):
        from paper_tables import main as paper_main

        sys.exit(paper_main(sys.argv[1:]))
    else:
        main(*sys.argv[1:])
