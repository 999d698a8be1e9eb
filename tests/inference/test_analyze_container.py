"""`analyze` reports a JPEG file's container quality (from its tables) beside the pixel estimate: API and CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from causalsr.cli.main import main
from causalsr.data.imageio import read_image
from causalsr.data.jpeg_container import ContainerQuality
from causalsr.inference.api import Upscaler
from causalsr.models.model_file import save_pretrained
from helpers import jpeg_files, photo_image, tiny_model

QUALITIES = (10, 50, 75, 95)


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(tiny_model())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpeg")
    img = photo_image(48, 64, seed=2)
    out = jpeg_files(folder, img, QUALITIES)
    out["png"] = folder / "a.png"
    img.save(out["png"])
    with Image.open(out[10]) as im:  # compressed at 10, then re-saved at 95: pixels and container disagree
        im.convert("RGB").save(folder / "resaved.jpg", format="JPEG", quality=95)
    out["resaved"] = folder / "resaved.jpg"
    return out


@pytest.mark.parametrize("quality", QUALITIES)
def test_api_reports_the_written_quality(up, files, quality):
    with Image.open(files[quality]) as im:
        report = up.analyze(im)
    assert report.container == ContainerQuality(quality, True, 0)
    assert up.analyze(read_image(files[quality])).container == report.container  # a LoadedImage read from the file
    assert f"JPEG file quality {quality} (standard IJG tables)" in str(report)
    assert report.to_dict()["container_jpeg"] == {"quality": quality, "exact": True, "distance": 0}
    assert "JPEG quality" in str(report).splitlines()[2]  # the pixel estimate stays, beside it


def test_api_has_no_container_for_png_arrays_and_copies(up, files):
    with Image.open(files["png"]) as im:
        assert up.analyze(im).container is None
    assert up.analyze(read_image(files["png"])).container is None
    with Image.open(files[50]) as im:
        rgb = np.asarray(im.convert("RGB"))
        assert up.analyze(rgb).container is None  # an array is pixels only
        report = up.analyze(im.convert("RGB"))
    assert report.container is None and report.to_dict()["container_jpeg"] is None
    assert "file quality" not in str(report)


def test_api_reads_the_last_save(up, files):
    assert up.analyze(read_image(files["resaved"])).container == ContainerQuality(95, True, 0)


def test_cli_prints_and_writes_the_container_quality(tmp_path, files, capsys):
    model = tmp_path / "tiny"
    save_pretrained(tiny_model(), model)
    code = main(["analyze", str(files[75]), str(files["png"]), "--model", str(model), "--json",
                 str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("JPEG file quality 75 (standard IJG tables)") == 1 and out.count("JPEG quality") == 2
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [r["container_jpeg"] for r in doc["images"]] == [{"quality": 75, "exact": True, "distance": 0}, None]
