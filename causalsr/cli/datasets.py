"""`causalsr datasets`: which benchmark and training sets the data folder holds, with image counts.

The data folder is ``--data-root``, else ``$CAUSALSR_DATA``, else ``../shared/data``
when it exists (layout and sources: docs/data.md). Exit status 0 when a data
folder was found (even with sets missing), 1 when there is none.

``--data-root`` for the commands that read named data sets is in
`causalsr.cli.common` (`add_data_root_argument`, `apply_data_root`).
"""
from __future__ import annotations

import argparse
import sys

from causalsr.cli.common import FAILED, OK, add_data_root_argument, apply_data_root, write_json

__all__ = ["add_arguments", "run", "survey", "add_data_root_argument", "apply_data_root"]  # older import paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_root_argument(p)
    p.add_argument("--json", metavar="PATH", help="also write the listing as JSON")


def survey() -> dict:
    """The data folder and, for every known set, its role, folder and image count (None when missing)."""
    from causalsr.data.datasets import (
        BENCHMARKS,
        EXPECTED_IMAGES,
        EXTRAS,
        TRAIN_SETS,
        data_root,
        data_root_source,
        find_dataset,
        list_images,
    )

    roles = {**{n: "benchmark" for n in dict.fromkeys(BENCHMARKS.values())},
             **{n: "train" for n in TRAIN_SETS.values()}, **{n: "calibration" for n in EXTRAS.values()}}
    sets = []
    for name, role in roles.items():
        folder = find_dataset(name)
        if folder is None:
            images = None
        elif role == "calibration":  # reference/distorted pairs: count the references
            images = len(list_images(folder / "ref")) if (folder / "ref").is_dir() else 0
        else:
            images = len(list_images(folder))
        sets.append({"name": name, "role": role, "folder": None if folder is None else str(folder),
                     "images": images, "expected": EXPECTED_IMAGES.get(name)})
    root = data_root()
    return {"data_root": None if root is None else str(root), "source": data_root_source(), "sets": sets}


def _status(s: dict) -> str:
    if s["images"] is None:
        return "missing"
    if s["expected"] and s["images"] < s["expected"]:
        return f"partial ({s['images']} of {s['expected']})"
    return "ok"


def run(args: argparse.Namespace) -> int:
    apply_data_root(args)
    doc = survey()
    root = doc["data_root"]
    print(f"data folder: {root} [{doc['source']}]" if root else f"data folder: none found [{doc['source']}]")
    print(f"{'set':<16} {'role':<12} {'images':>6}  {'status':<20} folder")
    for s in doc["sets"]:
        images = "-" if s["images"] is None else str(s["images"])
        print(f"{s['name']:<16} {s['role']:<12} {images:>6}  {_status(s):<20} {s['folder'] or '-'}")
    missing = [s["name"] for s in doc["sets"] if s["images"] is None]
    print(f"missing: {', '.join(missing) if missing else 'none'}")
    if not root:
        print("causalsr datasets: no data folder; set CAUSALSR_DATA or --data-root (see docs/data.md)",
              file=sys.stderr)
    if args.json:
        code = write_json(args.json, doc, "datasets")
        if code is not None:
            return code
    return OK if root else FAILED
