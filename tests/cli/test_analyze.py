"""`causalsr analyze`: factor estimates with std from Sigma, JSON, the --explain panel, bad inputs."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from causalsr.cli.main import main
from causalsr.cli.reliability import COVERAGE_COLOUR, HEADER_HEIGHT, MIN_WIDTH, STRIP_HEIGHT
from causalsr.models.model_file import save_pretrained
from helpers import photo, photo_image, tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained(tiny_model(), path)
    return str(path)


def test_analyze_prints_json_and_explains(tmp_path, model_path, capsys):
    img = photo_image()
    img.crop((200, 100, 240, 132)).save(tmp_path / "small.png")
    img.crop((0, 0, 300, 260)).convert("L").save(tmp_path / "large_grey.png")  # larger than the panel crop
    (tmp_path / "bad.png").write_bytes(b"")
    files = [tmp_path / n for n in ("small.png", "large_grey.png", "bad.png")]
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    code = main(["analyze", *map(str, files), "--model", model_path, "--json", str(tmp_path / "r.json"),
                 "--explain", str(tmp_path / "explain"), "--samples", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip().count("\n") == 0 and "bad.png" in err and "empty file" in err
    assert "noise sigma" in out and "+-" in out and "(0-255)" in out and "blur sigma" in out and "JPEG quality" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [r["path"] for r in doc["images"]] == [str(files[0]), str(files[1])]
    f = doc["images"][0]["factors"]["noise"]
    assert f["std"] > 0 and 0 <= f["value"] <= 50
    assert np.allclose(np.diag(doc["images"][0]["correlation"]), 1.0)
    panel = Image.open(tmp_path / "explain" / "small_explain.png")
    # 3 rows of 4 cells (input, restoration, 3 interventions, 2 samples, 2 counterfactual LRs), 80x64 + a label bar,
    # then the reliability strips (a header and one strip per factor), at least MIN_WIDTH wide
    strips = HEADER_HEIGHT + 3 * STRIP_HEIGHT
    assert panel.size == (MIN_WIDTH, 3 * (64 + 16) + strips)
    cells = np.asarray(panel)
    assert not np.array_equal(cells[16:240, 80:160], cells[16:240, 160:240])  # do(noise=0) changes the restoration
    assert not (cells == COVERAGE_COLOUR).all(axis=-1).any()  # no --reliability: no benchmark bar
    assert Image.open(tmp_path / "explain" / "large_grey_explain.png").size == (4 * 256, 3 * (256 + 16) + strips)
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before


def _grid_json(path, scale: int) -> str:
    crit = {"coverage90": {f: {"own_sweep": 0.9} for f in ("blur", "noise", "jpeg")},
            "blur_mae_sigma_0.5_3": {"analyze": 0.4}, "noise_mae_sigma_5_50": {"analyze": 2.0},
            "jpeg_mae_q_10_90": {"analyze": 3.0}}
    meta = {"model": "tiny", "scale": scale, "commit": "abc1234", "date": "2026-11-28", "timing": {"S": {"images": 2}}}
    path.write_text(json.dumps({"meta": meta, "results": {"S": {"criteria": crit}}}))
    return str(path)


def test_explain_draws_the_reliability_record_given(tmp_path, model_path, capsys):
    photo_image().crop((0, 0, 40, 32)).save(tmp_path / "a.png")
    args = ["analyze", str(tmp_path / "a.png"), "--model", model_path, "--samples", "1"]
    assert main([*args, "--explain", str(tmp_path / "e"), "--reliability", _grid_json(tmp_path / "g.json", 2)]) == 0
    panel = np.asarray(Image.open(tmp_path / "e" / "a_explain.png"))
    assert (panel[-3 * STRIP_HEIGHT:] == COVERAGE_COLOUR).all(axis=-1).any()  # the benchmark's coverage bars
    capsys.readouterr()
    assert main([*args, "--explain", str(tmp_path / "e"), "--reliability", _grid_json(tmp_path / "g4.json", 4)]) == 2
    assert "x4 model, this one is x2" in capsys.readouterr().err
    assert main([*args, "--reliability", str(tmp_path / "g.json")]) == 2  # drawn only in --explain panels
    assert "--explain" in capsys.readouterr().err


def test_analyze_errors(tmp_path, model_path, capsys):
    photo_image().crop((0, 0, 32, 32)).save(tmp_path / "a.png")
    assert main(["analyze", str(tmp_path / "a.png"), "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model file not found" in err
    assert main(["analyze", str(tmp_path / "a.png"), "--model", model_path, "--scale", "3"]) == 2
    assert "x2 model, not x3" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["analyze", str(tmp_path / "a.png"), "--model", model_path, "--explain", str(blocker / "d")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_counterfactual_lr_shows_the_intervened_degradation(model_path):
    """f_y on the restoration: LR-sized, and do(noise=30) adds grain that do(noise=0) does not."""
    from causalsr.cli.analyze import counterfactual_lr
    from causalsr.inference.api import load

    up = load(model_path)
    img = photo(64, 64)
    cond = up.condition(img)
    sr = up.upscale(img, conditioning=cond)
    clean = counterfactual_lr(up, sr, cond, {"noise": 0.0}).astype(np.float64)
    noisy = counterfactual_lr(up, sr, cond, {"noise": 30.0}).astype(np.float64)
    assert clean.shape == (64, 64, 3)
    assert 20 < (noisy - clean).std() < 40  # about 30 grey levels of noise (clipping takes a little)
