"""`causalsr datasets` (what the data folder holds) and --data-root on `effects` and `train`."""
from __future__ import annotations

import argparse
import json

import pytest

from causalsr.cli import datasets as datasets_cli
from causalsr.cli.main import main
from causalsr.data import datasets
from causalsr.models.model_file import save_pretrained
from helpers import SMOKE, photo_image, tiny_model


@pytest.fixture(autouse=True)
def _no_leftover_data_root(monkeypatch):
    """--data-root sets a process-wide folder: undo it after each test."""
    monkeypatch.setattr(datasets, "_data_root_override", None)


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """A data folder with a partial Set5 (3 images) and T91 (2 images), nothing else."""
    root = tmp_path_factory.mktemp("data")
    img = photo_image()
    for folder, n in ((root / "benchmarks" / "Set5" / "HR", 3), (root / "train" / "T91", 2)):
        folder.mkdir(parents=True)
        for i in range(n):
            img.crop((60 * i, 40 * i, 60 * i + 48, 40 * i + 40)).save(folder / f"im{i}.png")
    (root / "train" / "T91" / "notes.txt").write_text("not an image")
    return root


def _datasets(*argv: str) -> int:
    p = argparse.ArgumentParser()
    datasets_cli.add_arguments(p)
    return datasets_cli.run(p.parse_args(list(argv)))


def test_lists_found_partial_and_missing_sets(data_folder, tmp_path, capsys):
    assert _datasets("--data-root", str(data_folder), "--json", str(tmp_path / "d.json")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"data folder: {data_folder} [--data-root {data_folder}]"
    rows = {line.split()[0]: line.split() for line in out[2:-1]}
    assert rows["Set5"][:5] == ["Set5", "benchmark", "3", "partial", "(3"]
    assert rows["T91"][:3] == ["T91", "train", "2"]
    assert rows["BSD100"][2:4] == ["-", "missing"]
    assert out[-1] == "missing: Set14, BSD100, Urban100, Manga109, BSD200, iqa-calibration"
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["data_root"] == str(data_folder)
    set5 = next(s for s in doc["sets"] if s["name"] == "Set5")
    assert set5 == {"name": "Set5", "role": "benchmark", "folder": str(data_folder / "benchmarks/Set5/HR"),
                    "images": 3, "expected": 5}


def test_variable_and_missing_folder(data_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAUSALSR_DATA", str(data_folder))
    assert _datasets() == 0
    assert capsys.readouterr().out.startswith(f"data folder: {data_folder} [CAUSALSR_DATA={data_folder}]")
    monkeypatch.setenv("CAUSALSR_DATA", str(tmp_path / "nowhere"))  # set but absent: no fallback to the default
    assert _datasets() == 1
    out, err = capsys.readouterr()
    assert out.startswith("data folder: none found [CAUSALSR_DATA=") and "missing: Set5, Set14" in out
    assert err.count("\n") == 1 and "CAUSALSR_DATA" in err


def test_effects_reads_named_sets_from_data_root(data_folder, tmp_path, capsys):
    model = tmp_path / "tiny"
    save_pretrained(tiny_model(), model)
    base = ["effects", "--datasets", "Set5", "--scales", "2", "--treatment", "noise=0:15", "--degradation", "noise",
            "--samples", "1", "--model", str(model)]
    assert main([*base, "--data-root", str(data_folder)]) == 0
    assert "Set5" in capsys.readouterr().out
    datasets.set_data_root(None)
    assert main([*base, "--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "benchmark Set5 not found in --data-root" in err


def test_train_reads_named_sets_from_data_root(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--config", SMOKE, "-o", str(out), "--data-root", str(tmp_path / "nowhere"),
               "--set", "data.train_roots=[T91]"])
    assert rc == 2  # the run cannot start
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training set T91 not found in --data-root" in err
