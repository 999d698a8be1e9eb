"""imageio: round trips per mode and bit depth, EXIF orientation, bad files, atomic writes."""
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from causalsr.data.imageio import (
    ImageReadError,
    LoadedImage,
    from_tensor,
    is_image_path,
    quantise,
    read_image,
    to_tensor,
    write_image,
)

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
A8 = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
A16 = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)


def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "tiff"])
def test_rgb8_lossless_round_trip(tmp_path, ext):
    write_image(tmp_path / f"a.{ext}", RGB8)
    img = read_image(tmp_path / f"a.{ext}")
    assert (img.bit_depth, img.grey, img.alpha) == (8, False, None)
    np.testing.assert_array_equal(img.rgb, RGB8)


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_lossy_formats_close_at_high_quality(tmp_path, ext):
    ramp = np.add.outer(np.arange(32), np.arange(40))[..., None] * 3 + np.array([0, 20, 40])
    smooth = np.clip(ramp, 0, 255).astype(np.uint8)
    write_image(tmp_path / f"a.{ext}", smooth, quality=98)
    assert np.abs(read_image(tmp_path / f"a.{ext}").rgb.astype(int) - smooth).mean() < 2


@pytest.mark.parametrize("ext", ["png", "tif", "webp"])
def test_alpha_round_trip(tmp_path, ext):
    write_image(tmp_path / f"a.{ext}", RGB8, A8)
    img = read_image(tmp_path / f"a.{ext}")
    np.testing.assert_array_equal(img.alpha, A8)  # WebP keeps alpha losslessly
    if ext != "webp":
        np.testing.assert_array_equal(img.rgb, RGB8)


def test_jpeg_and_bmp_drop_alpha(tmp_path):
    for ext in ("jpg", "bmp"):
        write_image(tmp_path / f"a.{ext}", RGB8, A8)
        assert read_image(tmp_path / f"a.{ext}").alpha is None


@pytest.mark.parametrize("alpha", [None, A16])
def test_rgb16_png_round_trip(tmp_path, alpha):
    write_image(tmp_path / "a.png", RGB16, alpha, bit_depth=16)
    img = read_image(tmp_path / "a.png")
    assert img.bit_depth == 16 and img.rgb.dtype == np.uint16
    np.testing.assert_array_equal(img.rgb, RGB16)
    if alpha is not None:
        np.testing.assert_array_equal(img.alpha, A16)


def _filter_rows(raw, bpp):
    """PNG-filter each row with type (row % 5), vectorised from the unfiltered bytes."""
    raw = raw.astype(np.int32)
    out = []
    for r, row in enumerate(raw):
        prev = raw[r - 1] if r else np.zeros_like(row)
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        ftype = r % 5
        if ftype == 0:
            pred = 0
        elif ftype == 1:
            pred = left
        elif ftype == 2:
            pred = prev
        elif ftype == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        out.append(bytes([ftype]) + ((row - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def test_rgb16_png_with_all_row_filters(tmp_path):
    """Decoding of third-party 16-bit PNGs (Sub/Up/Average/Paeth filters), not only our encoder's."""
    rows = RGB16.astype(">u2").view(np.uint8).reshape(9, -1)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 11, 9, 16, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(_filter_rows(rows, 6))) + png_chunk(b"IEND", b""))
    (tmp_path / "f.png").write_bytes(data)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png").rgb, RGB16)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_grey16_round_trip(tmp_path, ext):
    write_image(tmp_path / f"g.{ext}", RGB16[..., 0], bit_depth=16)
    assert Image.open(tmp_path / f"g.{ext}").mode.startswith("I;16")
    img = read_image(tmp_path / f"g.{ext}")
    assert img.grey and img.bit_depth == 16
    np.testing.assert_array_equal(img.rgb, np.repeat(RGB16[..., :1], 3, axis=2))


def test_grey16_big_endian_and_mode_i(tmp_path):
    g = RGB16[..., 0]
    Image.frombytes("I;16B", (11, 9), g.astype(">u2").tobytes()).save(tmp_path / "b.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "b.tif").rgb[..., 0], g)
    Image.fromarray(g.astype(np.int32)).save(tmp_path / "i.tif")  # mode I (32-bit), values in 16-bit range
    img = read_image(tmp_path / "i.tif")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.rgb[..., 0], g)
    Image.fromarray(np.full((3, 3), 70000, np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(ImageReadError, match="outside 0..65535"):
        read_image(tmp_path / "big.tif")


def test_16bit_to_8bit_formats_rounds(tmp_path):
    write_image(tmp_path / "a.bmp", RGB16, bit_depth=16)
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp").rgb, np.round(RGB16 / 257).astype(np.uint8))


def test_grey_modes(tmp_path):
    Image.fromarray(A8).save(tmp_path / "l.png")
    img = read_image(tmp_path / "l.png")
    assert img.grey and img.alpha is None
    np.testing.assert_array_equal(img.rgb, np.repeat(A8[..., None], 3, axis=2))
    Image.merge("LA", [Image.fromarray(A8), Image.fromarray(255 - A8)]).save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert img.grey
    np.testing.assert_array_equal(img.alpha, 255 - A8)


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.fromarray((A8 % 4).astype(np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.alpha is None
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], np.uint8)
    np.testing.assert_array_equal(img.rgb, colours[A8 % 4])
    pal.save(tmp_path / "pt.png", transparency=2)
    img = read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(img.alpha, np.where(A8 % 4 == 2, 0, 255))


def test_cmyk(tmp_path):
    cmyk = Image.merge("CMYK", [Image.fromarray(np.full((4, 5), v, np.uint8)) for v in (0, 255, 255, 0)])
    cmyk.save(tmp_path / "c.tif")
    img = read_image(tmp_path / "c.tif")
    assert (img.rgb == np.array([255, 0, 0])).all()  # no cyan, full magenta+yellow = red


def test_exif_orientation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(RGB8).save(tmp_path / "o.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").rgb, np.rot90(RGB8, -1))


def _assert_one_line_error(path, match, **kw):
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kw)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and match in msg, msg
    assert isinstance(info.value, ValueError)


def test_bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_one_line_error(tmp_path / "empty.png", "empty")
    (tmp_path / "text.png").write_text("not an image\n")
    _assert_one_line_error(tmp_path / "text.png", "not a recognised image")
    write_image(tmp_path / "full.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    _assert_one_line_error(tmp_path / "trunc.png", "truncated")
    _assert_one_line_error(tmp_path / "missing.png", "no such file")
    _assert_one_line_error(tmp_path, "directory")


def test_decompression_bomb_refused(tmp_path):
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IEND", b""))
    _assert_one_line_error(tmp_path / "bomb.png", "decompression bomb")
    write_image(tmp_path / "small.png", RGB8)
    _assert_one_line_error(tmp_path / "small.png", "limit", max_pixels=50)


def test_atomic_writes_leave_no_temp_files(tmp_path):
    for ext in ("png", "jpg", "tif", "webp", "bmp"):
        write_image(tmp_path / f"a.{ext}", RGB8)
    write_image(tmp_path / "a.png", RGB16, bit_depth=16)  # overwrite in place
    with pytest.raises(ValueError, match="unsupported output extension"):
        write_image(tmp_path / "a.xyz", RGB8)
    with pytest.raises(TypeError):
        write_image(tmp_path / "f.png", RGB8.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bmp", "a.jpg", "a.png", "a.tif", "a.webp"]
    assert read_image(tmp_path / "a.png").bit_depth == 16


def test_tensor_conversions():
    img = LoadedImage(RGB8, None, 8, False, None)
    t = to_tensor(img)
    assert t.shape == (1, 3, 9, 11) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    np.testing.assert_array_equal(from_tensor(t), RGB8)
    t16 = to_tensor(LoadedImage(RGB16, None, 16, False, None))
    np.testing.assert_array_equal(from_tensor(t16, bit_depth=16), RGB16)
    x = torch.tensor([-0.2, 0.5 / 255, 1.49 / 255, 1.51 / 255, 1.3])
    assert torch.equal(quantise(x) * 255, torch.tensor([0.0, 1.0, 1.0, 2.0, 255.0]))


def test_is_image_path():
    assert is_image_path("a/b.PNG") and is_image_path("x.webp") and is_image_path("x.tiff")
    assert not is_image_path("x.txt") and not is_image_path("png")


def test_grey16_with_alpha_kept_exactly(tmp_path):
    write_image(tmp_path / "ga.png", RGB16[..., 0], A16, bit_depth=16)
    img = read_image(tmp_path / "ga.png")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.rgb, np.repeat(RGB16[..., :1], 3, axis=2))
    np.testing.assert_array_equal(img.alpha, A16)


def test_to_uint8_rounds_16_bit_and_inverts_the_8_to_16_bit_scaling():
    from causalsr.data.imageio import to_uint8

    v8 = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_uint8(v8.astype(np.uint16) * 257), v8)  # exact inverse of x * 257
    v16 = np.array([0, 128, 129, 385, 386, 65535], dtype=np.uint16)
    assert to_uint8(v16).tolist() == [0, 0, 1, 1, 2, 255]  # nearest: 128/257 < 0.5 < 129/257
    assert to_uint8(v8) is v8


@pytest.mark.parametrize("ext, bit_depth", [(".png", 8), (".png", 16), (".jpg", 8), (".webp", 8), (".tif", 8)])
def test_icc_and_exif_are_read_and_written(tmp_path, ext, bit_depth):
    from PIL import ExifTags, ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "causalsr"
    exif[ExifTags.Base.Orientation] = 8
    Image.fromarray(RGB8).save(tmp_path / "in.jpg", icc_profile=icc, exif=exif)
    src = read_image(tmp_path / "in.jpg")
    assert src.size == (9, 11) and src.icc_profile == icc  # orientation 8 applied: 11x9 shown as 9x11
    read_back = Image.Exif()
    read_back.load(src.exif)
    assert read_back[ExifTags.Base.Orientation] == 1 and read_back[ExifTags.Base.Make] == "causalsr"
    rgb = src.rgb if bit_depth == 8 else src.rgb.astype(np.uint16) * 257
    write_image(tmp_path / f"out{ext}", rgb, bit_depth=bit_depth, icc_profile=src.icc_profile, exif=src.exif)
    out = read_image(tmp_path / f"out{ext}")
    assert out.icc_profile == icc and out.bit_depth == bit_depth and out.size == (9, 11)
    if ext != ".tif":
        written = Image.Exif()
        written.load(out.exif)
        assert written[ExifTags.Base.Make] == "causalsr" and written[ExifTags.Base.Orientation] == 1
    plain = read_image(tmp_path / "in.jpg")
    write_image(tmp_path / "plain.png", plain.rgb)
    assert read_image(tmp_path / "plain.png").icc_profile is None
