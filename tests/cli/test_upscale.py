"""`causalsr upscale`: every option, bad inputs (one line each, batch continues), inputs never change."""
from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalsr.cli.main import main
from causalsr.data.imageio import encode_png16, read_image
from causalsr.models.model_file import save_pretrained
from helpers import photo_image, tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained(tiny_model(), path)
    return str(path)


def _photo(w: int = 40, h: int = 32) -> Image.Image:
    return photo_image().crop((200, 100, 200 + w, 100 + h))


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(["upscale", *argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_folder_glob_and_naming(tmp_path, model_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _photo().save(src / "a.png")
    _photo(24, 24).save(src / "b.jpg")
    _photo(16, 16).save(src / "sub" / "c.png")
    (src / "notes.txt").write_text("not an image")
    before = _hashes(src)
    code, err = _run(capsys, str(src), "-o", str(tmp_path / "out"), "--model", model_path)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x2.png", "b_x2.png"]
    assert Image.open(tmp_path / "out" / "a_x2.png").size == (80, 64)
    assert "2 written" in err[-1]
    code, _ = _run(capsys, str(src), "--recursive", "-o", str(tmp_path / "rec"), "--model", model_path,
                   "--suffix", "_sr", "--format", "webp")
    assert code == 0
    assert (tmp_path / "rec" / "sub" / "c_sr.webp").is_file() and (tmp_path / "rec" / "a_sr.webp").is_file()
    code, _ = _run(capsys, str(src / "*.jpg"), "-o", str(tmp_path / "glob"), "--model", model_path, "--format", "jpg")
    assert code == 0 and [p.name for p in (tmp_path / "glob").iterdir()] == ["b_x2.jpg"]
    code, _ = _run(capsys, str(src / "a.png"), "-o", str(tmp_path / "single.png"), "--model", model_path)
    assert code == 0 and Image.open(tmp_path / "single.png").size == (80, 64)
    assert _hashes(src) == before


def test_existing_outputs_and_never_overwriting_inputs(tmp_path, model_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _photo().save(src / "a.png")
    before = _hashes(src)
    out = tmp_path / "out"
    assert _run(capsys, str(src / "a.png"), "-o", str(out), "--model", model_path)[0] == 0
    stamp = (out / "a_x2.png").stat().st_mtime_ns
    code, err = _run(capsys, str(src / "a.png"), "-o", str(out), "--model", model_path)
    assert code == 0 and any("exists (use --overwrite)" in line for line in err)
    assert (out / "a_x2.png").stat().st_mtime_ns == stamp
    assert _run(capsys, str(src / "a.png"), "-o", str(out), "--model", model_path, "--overwrite")[0] == 0
    code, err = _run(capsys, str(src / "a.png"), "-o", str(src), "--suffix", "", "--overwrite", "--model", model_path)
    assert code == 1 and any("would replace an input file" in line for line in err)
    assert _hashes(src) == before


def test_model_and_option_errors_are_one_line(tmp_path, model_path, capsys):
    _photo().save(tmp_path / "a.png")
    a = str(tmp_path / "a.png")
    out = str(tmp_path / "out")
    cases = [
        (["--model", str(tmp_path / "missing")], "model file not found"),
        (["--model", model_path, "--scale", "4"], "x2 model, not x4"),
        (["--model", model_path, "--do", "noise=500"], "--do: do(noise=500): outside the factor's range"),
        (["--model", model_path, "--do", "sharpness=1"], "--do: unknown degradation factor"),
        (["--model", model_path, "--do", "noise"], "FACTOR=VALUE"),
        (["--model", model_path, "--tile", "16", "--tile-overlap", "12"], "tile-overlap"),
    ]
    for extra, message in cases:
        code, err = _run(capsys, a, "-o", out, *extra)
        assert code == 2 and len(err) == 1 and message in err[0], (extra, err)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _run(capsys, a, "-o", str(blocker / "out"), "--model", model_path)
    assert code == 2 and len(err) == 1 and "cannot create output folder" in err[0]
    with pytest.raises(SystemExit):
        main(["upscale", a, "-o", out, "--tile", "big"])


def test_inference_options(tmp_path, model_path, capsys):
    _photo(48, 40).save(tmp_path / "a.png")
    a = str(tmp_path / "a.png")

    def upscale(name: str, *extra: str) -> np.ndarray:
        code, err = _run(capsys, a, "-o", str(tmp_path / f"{name}.png"), "--model", model_path, "--scale", "2", *extra)
        assert code == 0, err
        return np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=int)

    base = upscale("base")
    assert base.shape == (80, 96, 3)
    tiled = upscale("tiled", "--tile", "32", "--tile-overlap", "16")
    assert np.abs(tiled - base).mean() < 0.5
    assert (upscale("untiled", "--tile", "0") == base).all()
    assert (upscale("auto", "--tile", "auto") == base).all()
    assert upscale("tta", "--tta").shape == base.shape
    assert np.abs(upscale("bf16", "--precision", "bf16") - base).mean() < 3
    assert (upscale("do", "--do", "noise=0", "jpeg=100") != base).any()


def test_bad_and_unusual_inputs(tmp_path, model_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    photo = _photo(24, 20)
    photo.save(src / "ok.png")
    (src / "empty.png").write_bytes(b"")
    good = (src / "ok.png").read_bytes()
    (src / "truncated.png").write_bytes(good[:len(good) // 2])
    (src / "text.png").write_text("this is not a PNG file\n")
    (src / "huge.png").write_bytes(_png_header_only(100_000, 100_000))
    photo.convert("CMYK").save(src / "cmyk.jpg")
    photo.convert("LA").save(src / "la.png")
    (src / "deep.png").write_bytes(encode_png16(np.asarray(photo, dtype=np.uint16) * 257))
    before = _hashes(src)
    out = tmp_path / "out"
    code, err = _run(capsys, str(src), str(tmp_path / "nothing-*.png"), "-o", str(out), "--model", model_path)
    assert code == 1
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 5  # empty, truncated, text, huge, and the glob with no match
    for name in ("empty.png", "truncated.png", "text.png", "huge.png", "nothing-*.png"):
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert "4 written, 0 skipped, 5 failed" in err[-1]
    assert _hashes(src) == before
    assert Image.open(out / "cmyk_x2.png").mode == "RGB"
    la = Image.open(out / "la_x2.png")
    assert la.mode == "LA" and la.size == (48, 40)
    deep = read_image(out / "deep_x2.png")
    assert deep.bit_depth == 16 and deep.rgb.shape == (40, 48, 3)
    eight = np.asarray(Image.open(out / "ok_x2.png"), dtype=float)
    assert np.abs(deep.rgb / 257.0 - eight).max() <= 1.0


def test_do_on_a_plain_model_is_a_one_line_error_naming_the_option(tmp_path, capsys):
    from causalsr.models.causalsr import CausalSR
    from causalsr.models.model_file import save_pretrained
    from helpers import tiny_config

    save_pretrained(CausalSR(tiny_config(2, plain=True)), tmp_path / "plain")
    _photo().save(tmp_path / "a.png")
    code, err = _run(capsys, str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "plain"),
                     "--do", "noise=0")
    assert code == 2 and len(err) == 1 and "--do" in err[0] and "plain model" in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
