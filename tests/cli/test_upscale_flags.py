"""`causalsr upscale`'s Real-ESRGAN-style flags (issue 15): -i, -s/--outscale, -t, --ext auto, --jpeg-quality,
and the input's ICC profile and EXIF carried over (orientation applied to the pixels, reset to 1 in the output)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from causalsr.cli.main import main
from causalsr.cli.upscale import model_scale_for
from causalsr.data.imageio import LoadedImage, encode_png16, read_image
from causalsr.data.jpeg_container import container_quality
from causalsr.inference.images import resize_loaded
from causalsr.models.model_file import save_pretrained
from helpers import photo_image, tiny_model

ORIENTATION = ExifTags.Base.Orientation


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained(tiny_model(), path)  # x2
    return str(path)


@pytest.fixture(scope="module")
def srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _run(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(["upscale", *argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_outscale_ext_auto_and_icc(tmp_path, model_path, srgb, capsys):
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "causalsr-test"
    photo_image().crop((200, 100, 241, 131)).save(tmp_path / "a.jpg", quality=95, icc_profile=srgb, exif=exif)
    out = tmp_path / "out"
    code, err = _run(capsys, "-i", str(tmp_path / "a.jpg"), "-o", str(out), "-s", "3.5", "-t", "128", "--ext", "auto",
                     "--model", model_path, "--jpeg-quality", "80")
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["a_x3.5.jpg"]
    with Image.open(out / "a_x3.5.jpg") as im:
        assert im.format == "JPEG" and im.size == (round(3.5 * 41), round(3.5 * 31)) == (144, 108)
        assert im.info["icc_profile"] == srgb
        assert im.getexif()[ExifTags.Base.Make] == "causalsr-test"
    assert container_quality(out / "a_x3.5.jpg").quality == 80


def test_exif_orientation_is_applied_and_reset(tmp_path, model_path, capsys):
    stored = np.zeros((30, 40, 3), np.uint8)
    stored[:, :20] = (220, 30, 30)  # left half red, right half blue, as stored
    stored[:, 20:] = (30, 30, 220)
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown rotated 90 degrees clockwise: the stored left half on top
    Image.fromarray(stored).save(tmp_path / "r.jpg", quality=95, exif=exif)
    code, err = _run(capsys, str(tmp_path / "r.jpg"), "-o", str(tmp_path / "out"), "--ext", "auto", "--model",
                     model_path)
    assert code == 0, err
    with Image.open(tmp_path / "out" / "r_x2.jpg") as im:
        assert im.size == (60, 80)  # upright: portrait
        assert im.getexif().get(ORIENTATION, 1) == 1
        px = np.asarray(im.convert("RGB"), dtype=float)
    top, bottom = px[:30].mean(axis=(0, 1)), px[50:].mean(axis=(0, 1))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_ext_auto_per_input_and_sixteen_bit_icc(tmp_path, model_path, srgb, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photo = photo_image().crop((0, 0, 24, 20))
    photo.save(src / "p.png")
    photo.save(src / "w.webp", quality=90)
    photo.save(src / "b.bmp")
    (src / "deep.png").write_bytes(encode_png16(np.asarray(photo, dtype=np.uint16) * 257, icc_profile=srgb))
    code, err = _run(capsys, str(src), "-o", str(tmp_path / "out"), "--ext", "auto", "--model", model_path)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_x2.png", "deep_x2.png", "p_x2.png", "w_x2.webp"]
    deep = read_image(tmp_path / "out" / "deep_x2.png")
    assert deep.bit_depth == 16 and deep.icc_profile == srgb
    with Image.open(tmp_path / "out" / "w_x2.webp") as im:
        assert im.format == "WEBP"


def test_input_option_and_errors(tmp_path, model_path, capsys):
    photo_image().crop((0, 0, 20, 16)).save(tmp_path / "a.png")
    photo_image().crop((50, 0, 70, 16)).save(tmp_path / "b.png")
    code, err = _run(capsys, str(tmp_path / "a.png"), "-i", str(tmp_path / "b.png"), "-o", str(tmp_path / "out"),
                     "--model", model_path, "--outscale", "2")
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "b_x2.png"], err
    assert Image.open(tmp_path / "out" / "a_x2.png").size == (40, 32)
    code, err = _run(capsys, "-o", str(tmp_path / "none"), "--model", model_path)
    assert code == 2 and len(err) == 1 and "no input: give INPUT or -i/--input" in err[0]
    for bad in (["-s", "0"], ["-s", "x"], ["--jpeg-quality", "101"], ["--ext", "gif"]):
        with pytest.raises(SystemExit):
            main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "bad"), *bad])


def test_model_scale_for():
    assert [model_scale_for(s) for s in (0.5, 1.5, 2.4, 2.5, 3.5, 4, 6)] == [2, 2, 2, 3, 4, 4, 4]


def test_resize_loaded_keeps_kind():
    rgb = np.asarray(photo_image().crop((0, 0, 20, 10)), dtype=np.uint16) * 257
    img = LoadedImage(rgb, np.full((10, 20), 65535, np.uint16), 16, False, Path("x.png"), b"icc", b"Exif\0\0")
    out = resize_loaded(img, (7, 5))
    assert out.rgb.shape == (5, 7, 3) and out.rgb.dtype == np.uint16 and out.alpha is not None
    assert (out.alpha == 65535).all() and out.icc_profile == b"icc" and out.exif == b"Exif\0\0"
    grey = resize_loaded(LoadedImage(np.repeat(rgb[..., :1] // 257, 3, 2).astype(np.uint8), None, 8, True,
                                     img.path), (30, 15))
    assert grey.rgb.shape == (15, 30, 3) and (grey.rgb[..., 0] == grey.rgb[..., 2]).all()
