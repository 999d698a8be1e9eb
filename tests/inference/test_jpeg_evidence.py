"""`upscale`'s JPEG evidence: the restorer is told min(posterior's JPEG quality, the file's stated quality).

Checked against the same restoration told the quality explicitly with `do`, on files Pillow writes at
known qualities: the rule must fire exactly when the file states a quality below the posterior's reading.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from causalsr.cli.main import main
from causalsr.data.imageio import read_image
from causalsr.data.jpeg_container import ContainerQuality
from causalsr.inference.api import Upscaler
from causalsr.inference.jpeg_evidence import evidence_do
from causalsr.models.model_file import save_pretrained
from helpers import jpeg_files, photo_image, tiny_model


def test_evidence_do_is_the_minimum_of_posterior_and_standard_container():
    assert evidence_do(36.0, ContainerQuality(30, True, 0)) == {"jpeg": 30.0}
    assert evidence_do(25.0, ContainerQuality(30, True, 0)) == {}  # the posterior already reads lower
    assert evidence_do(30.0, ContainerQuality(30, True, 0)) == {}
    assert evidence_do(90.0, ContainerQuality(30, False, 12)) == {}  # non-standard tables: no evidence
    assert evidence_do(90.0, None) == {}
    assert evidence_do(40.0, ContainerQuality(5, True, 0)) == {"jpeg": 10.0}  # kept in the factor's range


READ_QUALITY = 10.0 + 0.55 * 90.0  # what `_reads_jpeg_at_59_5`'s posterior reads on every image


def _reads_jpeg_at_59_5():
    """The tiny model with a posterior whose JPEG mean is a constant 0.55 (quality 59.5): it reads
    every file the same, so which files the rule fires on is known (the untouched tiny model reads 10)."""
    model = tiny_model()
    last = model.posterior.head[2]
    with torch.no_grad():
        last.weight[2].zero_()
        last.bias[2] = 0.55
    return model


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(_reads_jpeg_at_59_5())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return jpeg_files(tmp_path_factory.mktemp("jpeg"), photo_image(40, 48, seed=5), (10, 100))


def _estimate(up: Upscaler, path) -> float:
    with Image.open(path) as im:
        return up.analyze(im).factors["jpeg"].value


def test_rule_fires_when_the_file_states_a_lower_quality(up, files):
    assert _estimate(up, files[10]) == pytest.approx(READ_QUALITY, abs=1e-3)  # above 10: the rule fires
    with Image.open(files[10]) as im:
        ruled = up.upscale(im)
        told = up.upscale(im, do={"jpeg": 10.0}, jpeg_evidence="none")
        blind = up.upscale(im, jpeg_evidence="none")
    assert np.array_equal(np.asarray(ruled), np.asarray(told))
    assert not np.array_equal(np.asarray(ruled), np.asarray(blind))
    loaded = read_image(files[10])  # the CLI's route: a LoadedImage read from the file
    assert np.array_equal(up.upscale(loaded).rgb, np.asarray(told))


def test_rule_keeps_the_posterior_when_it_reads_lower_or_the_user_sets_jpeg(up, files):
    assert _estimate(up, files[100]) == pytest.approx(READ_QUALITY, abs=1e-3)  # below the file's 100
    with Image.open(files[100]) as im:
        assert np.array_equal(np.asarray(up.upscale(im)), np.asarray(up.upscale(im, jpeg_evidence="none")))
    with Image.open(files[10]) as im:
        mine = up.upscale(im, do={"jpeg": 60.0})
        assert np.array_equal(np.asarray(mine), np.asarray(up.upscale(im, do={"jpeg": 60.0}, jpeg_evidence="none")))
        pixels = np.asarray(im.convert("RGB"))  # an array has no file behind it
    assert np.array_equal(up.upscale(pixels), up.upscale(pixels, jpeg_evidence="none"))
    with pytest.raises(ValueError, match="jpeg_evidence must be one of"):
        up.upscale(pixels, jpeg_evidence="file")


def test_cli_default_uses_the_container_and_none_turns_it_off(tmp_path, files):
    model = tmp_path / "tiny"
    save_pretrained(_reads_jpeg_at_59_5(), model)
    base = ["upscale", str(files[10]), "--model", str(model), "--tile", "0"]
    assert main([*base, "-o", str(tmp_path / "default.png")]) == 0
    assert main([*base, "-o", str(tmp_path / "told.png"), "--do", "jpeg=10", "--jpeg-evidence", "none"]) == 0
    assert main([*base, "-o", str(tmp_path / "none.png"), "--jpeg-evidence", "none"]) == 0
    out = {k: np.asarray(Image.open(tmp_path / f"{k}.png")) for k in ("default", "told", "none")}
    assert np.array_equal(out["default"], out["told"]) and not np.array_equal(out["default"], out["none"])
