"""`container_quality` reads back the quality Pillow (libjpeg) wrote, from the file's tables alone."""
import numpy as np
import pytest
from PIL import Image

from causalsr.data.jpeg_container import ContainerQuality, container_quality, ijg_luminance_table, quality_from_table
from helpers import photo_image


@pytest.mark.parametrize("quality", [1, 10, 25, 50, 75, 90, 95, 100])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_reads_the_quality_pillow_wrote(tmp_path, quality, mode):
    path = tmp_path / f"q{quality}.jpg"
    photo_image(64, 48).convert(mode).save(path, format="JPEG", quality=quality)
    got = container_quality(path)
    assert got == ContainerQuality(quality, True, 0)
    with Image.open(path) as im:  # the table in the file is libjpeg's scaled standard table
        assert list(im.quantization[0]) == ijg_luminance_table(quality).tolist()
        assert container_quality(im) == got  # an opened image answers the same


def test_every_quality_has_its_own_table():
    tables = {tuple(ijg_luminance_table(q)) for q in range(1, 101)}
    assert len(tables) == 100
    assert ijg_luminance_table(50).tolist()[:8] == [16, 11, 10, 16, 24, 40, 51, 61]  # T.81 Table K.1, row 1
    assert set(ijg_luminance_table(100).tolist()) == {1}


def test_non_standard_tables_give_the_nearest_quality_not_exact(tmp_path):
    table = ijg_luminance_table(60).tolist()
    table[63] += 7  # one entry off the standard table
    path = tmp_path / "custom.jpg"
    photo_image(64, 48).save(path, format="JPEG", qtables=[table])
    got = container_quality(path)
    assert got is not None and got.quality == 60 and not got.exact and got.distance == 7
    assert "non-standard" in str(got)


def test_non_jpeg_inputs_have_none(tmp_path):
    png = tmp_path / "a.png"
    photo_image(32, 32).save(png)
    assert container_quality(png) is None
    assert container_quality(tmp_path / "missing.jpg") is None
    assert container_quality(Image.fromarray(np.zeros((8, 8, 3), np.uint8))) is None
    jpg = tmp_path / "a.jpg"
    photo_image(32, 32).save(jpg, quality=80)
    with Image.open(jpg) as im:
        assert container_quality(im.convert("RGB")) is None  # a converted copy has no tables


def test_table_size_is_checked():
    with pytest.raises(ValueError, match="64 entries"):
        quality_from_table([1] * 63)
    with pytest.raises(ValueError, match="1..100"):
        ijg_luminance_table(0)
