"""scripts/gpu_check.py, on its CPU-vs-CPU path (the GPU run itself needs a CUDA machine)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from helpers import write_images

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_against_cpu_writes_a_passing_record(gpu_check, tmp_path):
    hr = write_images(tmp_path / "hr", 2, 96)
    out = tmp_path / "rec" / "check.json"
    assert gpu_check.main(["--device", "cpu", "--json", str(out), "--dataset", str(hr), "--images", "1"]) == 0
    record = json.loads(out.read_text())
    assert {"date", "machine", "commit", "command", "device", "device_name", "reference"} <= set(record["meta"])
    assert record["meta"]["device"] == "cpu" and record["meta"]["model"] == "x4"
    assert list(record["per_image"]) == ["img0"]
    fp32, fp16 = record["summary"]["fp32"], record["summary"]["fp16"]
    assert fp32["max_abs"] == 0.0 and fp32["pass"] and fp32["tolerance"] == pytest.approx(1 / 255)
    # fp16 runs on CUDA and MPS only: on the CPU the API falls back to fp32, and the record says so
    assert fp16["max_abs"] == 0.0 and fp16["ran_in_fp16"] is False
    assert "fp16 runs on a GPU" in record["per_image"]["img0"]["fp16"]["warnings"][0]


def test_absent_device_is_exit_2_with_one_line(gpu_check, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the absent-device path needs one without")
    assert gpu_check.main(["--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu_check: cuda: no CUDA device") and "\n" not in err
    assert not (tmp_path / "x.json").exists()
