"""The public inference API: load, upscale (all input kinds), conditioning once, do, analyze, TTA, bf16."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import causalsr
from causalsr.data.imageio import LoadedImage
from causalsr.factors import FACTORS, scale_factors
from causalsr.inference import bundled, upscaler
from causalsr.inference.api import Upscaler, load, load_for_scale
from causalsr.inference.tta import transform, transform_box
from causalsr.models.model_file import save_folder, save_pretrained
from helpers import photo as make_photo
from helpers import tiny_model


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(tiny_model())


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_photo()[100:148, 200:264].copy()  # 48x64


def test_array_in_array_out(up, photo):
    out = up.upscale(photo)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == (96, 128, 3)
    # the API's conversions add nothing: the same as the raw model on the same tensor, quantised
    with torch.no_grad():
        raw = up.model(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)
    expected = (raw[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_pil_modes_round_trip(up, photo):
    rgb = Image.fromarray(photo)
    assert up.upscale(rgb).mode == "RGB" and up.upscale(rgb).size == (128, 96)
    grey = rgb.convert("L")
    out = up.upscale(grey)
    assert out.mode == "L" and out.size == (128, 96)
    la = Image.merge("LA", [grey, Image.linear_gradient("L").resize(grey.size)])
    out = up.upscale(la)
    assert out.mode == "LA" and out.size == (128, 96)
    expected_alpha = np.asarray(la.getchannel("A").resize((128, 96), Image.BICUBIC), dtype=int)
    assert np.abs(np.asarray(out.getchannel("A"), dtype=int) - expected_alpha).max() <= 1
    rgba = rgb.convert("RGBA")
    assert up.upscale(rgba).mode == "RGBA"
    assert up.upscale(rgb.convert("CMYK")).mode == "RGB"
    g16 = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    out = up.upscale(g16)
    assert out.mode.startswith("I;16") and out.size == (128, 96)


def test_arrays_keep_layout_and_bit_depth(up, photo):
    out8 = up.upscale(photo)
    out16 = up.upscale(photo.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16 and out16.shape == (96, 128, 3)
    assert np.abs(out16 / 257.0 - out8).max() <= 1.0  # same restoration, finer grid
    grey = photo[..., 0]
    assert up.upscale(grey).shape == (96, 128)
    assert up.upscale(grey[..., None]).shape == (96, 128, 1)
    g = up.upscale(np.dstack([grey, grey]))
    assert g.shape == (96, 128, 2)
    rgba = up.upscale(np.dstack([photo, np.full(grey.shape, 255, np.uint8)]))
    assert rgba.shape == (96, 128, 4) and (rgba[..., 3] == 255).all()
    with pytest.raises(TypeError, match="uint8 or uint16"):
        up.upscale(photo.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        up.upscale(np.zeros((4, 4, 5), np.uint8))


def test_loaded_image_in_loaded_image_out(up, photo):
    alpha = np.full(photo.shape[:2], 65535, np.uint16)
    img = LoadedImage(photo.astype(np.uint16) * 257, alpha, 16, False, "photo.png")
    out = up.upscale(img)
    assert isinstance(out, LoadedImage) and out.bit_depth == 16 and out.rgb.dtype == np.uint16
    assert out.alpha.shape == (96, 128) and (out.alpha == 65535).all()


def test_conditioning_computed_once_per_image(up, photo, monkeypatch):
    calls = {"infer_z": 0, "context": 0}
    for name in calls:
        original = getattr(up.model, name)

        def counted(*a, _name=name, _orig=original, **k):
            calls[_name] += 1
            return _orig(*a, **k)

        monkeypatch.setattr(up.model, name, counted)
    tiles = []
    out = up.upscale(photo, tile=32, tile_overlap=16, progress=tiles.append)
    assert len(tiles) == 6 and calls == {"infer_z": 1, "context": 1}
    whole = up.upscale(photo, tile=None)
    assert np.abs(out.astype(int) - whole).mean() < 0.5


def test_do_uses_the_prior_do_operator(up, photo):
    cond = up.condition(photo)
    cut = up.intervene(cond, {"noise": 0})
    assert cut.z[0, 1].item() == pytest.approx(0.0)
    torch.testing.assert_close(cut.z, up.model.do(cond.z, cond.pooled, {1: 0.0}))
    plain, clean = up.upscale(photo), up.do(photo, noise=0)
    assert (plain != clean).any()
    np.testing.assert_array_equal(clean, up.upscale(photo, do={"noise": 0.0}))
    np.testing.assert_array_equal(clean, up.upscale(photo, conditioning=cond, do={"noise": 0.0}))
    with pytest.raises(ValueError, match="range"):
        up.do(photo, noise=80)
    with pytest.raises(ValueError, match="unknown degradation factor"):
        up.do(photo, sharpness=1)
    with pytest.raises(ValueError, match="at least one"):
        up.do(photo)


def test_analyze_reports_factors_with_uncertainty(up, photo):
    report = up.analyze(photo)
    q = up.model.infer_z(torch.from_numpy(photo / 255.0).permute(2, 0, 1)[None].float())
    std = (q.covariance_matrix[0].diagonal()[:3].sqrt() * scale_factors()).double().detach()
    assert list(report.factors) == [f.name for f in FACTORS]
    for i, f in enumerate(report.factors.values()):
        assert f.low <= f.value <= f.high
        assert f.std == pytest.approx(float(std[i]), rel=1e-4)
    np.testing.assert_allclose(np.diag(report.correlation), 1.0, atol=1e-9)
    z_dim = up.model.cfg.z_dim
    assert report.z_covariance.shape == (z_dim, z_dim)
    text = str(report)
    assert "noise sigma" in text and "+-" in text and "(0-255)" in text and "JPEG quality" in text
    assert set(report.to_dict()) >= {"factors", "covariance", "correlation"}


def test_samples_draw_z_from_the_posterior(up, photo):
    a = up.samples(photo, n=2, seed=1)
    b = up.samples(photo, n=2, seed=1)
    assert len(a) == 2 and (a[0] != a[1]).any()
    np.testing.assert_array_equal(a[0], b[0])


def test_tta_transforms_boxes_consistently():
    img = torch.arange(6 * 10.0).view(1, 1, 6, 10)
    box = (2 / 6, 3 / 10, 5 / 6, 7 / 10)
    crop = img[..., 2:5, 3:7]
    for flip in (False, True):
        for k in range(4):
            t = transform(img, flip, k)
            top, left, bottom, right = transform_box(box, flip, k)
            h, w = t.shape[-2:]
            region = t[..., round(top * h):round(bottom * h), round(left * w):round(right * w)]
            torch.testing.assert_close(region, transform(crop, flip, k))


class EquivariantRestorer(nn.Module):
    """Nearest upsampling plus the context map sampled at the tile's box: commutes with flips and rotations."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, lr, cond, tokens, ctx_box=None):
        from causalsr.models.backbone import _resize_map

        b, n, d = tokens.shape
        g = int(n**0.5)
        grid = tokens.transpose(1, 2).reshape(b, d, g, g)[:, :3]
        up = lr.repeat_interleave(self.scale, -1).repeat_interleave(self.scale, -2)
        return up + 0.2 * torch.tanh(_resize_map(grid, up.shape[-2:], ctx_box))


def test_tta_inverts_transforms_and_moves_the_context(photo):
    model = tiny_model()
    model.restorer = EquivariantRestorer(2)
    up = Upscaler(model)
    plain = up.upscale(photo, tile=32, tile_overlap=8)
    tta = up.upscale(photo, tile=32, tile_overlap=8, tta=True)
    assert np.abs(tta.astype(int) - plain).max() <= 1
    assert Upscaler(tiny_model()).upscale(photo, tta=True).shape == (96, 128, 3)


def test_bf16_and_fallback(up, photo, monkeypatch, caplog):
    fp32 = up.upscale(photo)
    bf16 = up.upscale(photo, precision="bf16")
    assert bf16.shape == fp32.shape and np.abs(bf16.astype(int) - fp32).mean() < 3
    monkeypatch.setattr(upscaler, "BF16_TOLERANCE", -1.0)  # any difference counts as unsafe
    with caplog.at_level(logging.WARNING, logger="causalsr"):
        fallback = up.upscale(photo, precision="bf16")
    np.testing.assert_array_equal(fallback, fp32)
    assert any("using fp32" in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="precision"):
        up.upscale(photo, precision="fp8")


def test_auto_tile(up):
    assert up.bytes_per_lr_pixel() > 0
    assert up.resolve_tile("auto", (48, 64)) is None
    assert up.resolve_tile(None, (4000, 4000)) is None
    assert up.resolve_tile(128, (48, 64)) == 128


def test_load_checkpoint_and_errors(tmp_path, photo):
    model = tiny_model()
    save_pretrained(model, tmp_path / "tiny", {"note": "test"})
    loaded = causalsr.load(str(tmp_path / "tiny.safetensors"))
    assert loaded.scale == 2 and loaded.meta["note"] == "test"
    torch.testing.assert_close(loaded.model.restorer.state_dict(), model.restorer.state_dict())
    assert np.array_equal(loaded.upscale(photo), Upscaler(model).upscale(photo))  # the file holds the encoder too
    assert load_for_scale(tmp_path / "tiny", 2).scale == 2
    with pytest.raises(ValueError, match="x2 model, not x4"):
        load_for_scale(tmp_path / "tiny", 4)
    with pytest.raises(FileNotFoundError, match="not found"):
        load(tmp_path / "missing")
    (tmp_path / "bad.json").write_text('{"format": "causalsr-inference/1", "arch": "other"}')
    (tmp_path / "bad.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not a causalsr checkpoint"):
        load(tmp_path / "bad")


def test_bundled_names(monkeypatch, tmp_path):
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="bundled model 'x4' is not installed"):
        load("x4")
    save_folder(tiny_model(), tmp_path / "x2")
    assert load("x2").scale == 2
    assert bundled.model_card("x2") is None
    with pytest.raises(KeyError, match="unknown bundled model"):
        bundled.bundled_dir("x8")
