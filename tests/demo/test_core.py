"""The web demo's logic without gradio: upload checks, slider -> do(), restoration on the bundled x4, result files."""
import os
import time

import numpy as np
import pytest
from PIL import Image

import causalsr
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.data.imageio import read_image, write_image
from causalsr.demo import core
from causalsr.factors import FACTORS
from helpers import photo


@pytest.fixture(scope="module")
def x4():
    return causalsr.load("x4")


@pytest.fixture(scope="module")
def noisy():
    """A 64x64 LR photo with noise sigma 15, as `causalsr upscale --do` is documented on."""
    return degrade_numpy_uint8(photo(256, 256, seed=3), parse_degradation("noise:15", 4, seed=0))


# ------------------------------------------------------------------ uploads
def test_an_empty_file_is_refused_with_a_message(tmp_path):
    f = tmp_path / "empty.png"
    f.write_bytes(b"")
    with pytest.raises(core.UploadError, match=r"empty \(0 bytes\)"):
        core.load_upload(f)


def test_a_text_file_is_refused_with_a_message(tmp_path):
    f = tmp_path / "notes.png"  # an image's name does not make it one
    f.write_text("hello, not an image\n")
    with pytest.raises(core.UploadError, match="not an image"):
        core.load_upload(f)


def test_an_oversized_image_is_refused_before_decoding(tmp_path):
    f = tmp_path / "big.png"
    Image.new("RGB", (1200, 1000), (90, 120, 200)).save(f)  # 1.2 MP in a few KB
    with pytest.raises(core.UploadError, match=r"1200x1000 \(1.2 megapixels\), over .* 1.0 megapixel limit"):
        core.load_upload(f, core.Limits(max_pixels=1_000_000))


def test_a_file_over_the_byte_limit_is_refused(tmp_path):
    f = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(f)
    with pytest.raises(core.UploadError, match="MB limit"):
        core.load_upload(f, core.Limits(max_bytes=100_000))


def test_a_tiny_image_is_refused(tmp_path):
    f = tmp_path / "tiny.png"
    Image.new("RGB", (4, 30)).save(f)
    with pytest.raises(core.UploadError, match="at least 8 pixels"):
        core.load_upload(f)


def test_a_truncated_image_names_no_server_path(tmp_path):
    f = tmp_path / "cut.png"
    Image.fromarray(photo(64, 64)).save(f)
    f.write_bytes(f.read_bytes()[:300])
    with pytest.raises(core.UploadError, match="could not be decoded") as e:
        core.load_upload(f)
    assert str(tmp_path) not in str(e.value)


def test_uploads_become_8_bit_rgb(tmp_path):
    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 200).save(grey16)
    rgba = tmp_path / "rgba.png"
    write_image(rgba, photo(20, 24), np.full((20, 24), 128, np.uint8))
    for f, (h, w) in ((grey16, (16, 20)), (rgba, (20, 24))):
        arr = core.load_upload(f)
        assert arr.dtype == np.uint8 and arr.shape == (h, w, 3), f.name
    np.testing.assert_array_equal(core.load_upload(rgba), read_image(rgba).rgb)


# ------------------------------------------------------------------ models
def test_models_are_bundled_only_and_loaded_once():
    models = core.Models()
    for bad in ("/etc/passwd", "../weights/x4", "x5", ""):
        with pytest.raises(core.UploadError, match="Unknown scale"):
            models.get(bad)
    assert models.get("x2") is models.get("x2")
    assert models.get("x2").scale == 2


# ------------------------------------------------------------------ sliders
def test_sliders_cover_each_factor_and_say_what_they_mean():
    assert [s.name for s in core.SLIDERS] == [f.name for f in FACTORS]
    for s, f in zip(core.SLIDERS, FACTORS):
        assert (s.low, s.high, s.absent) == (f.low, f.high, f.absent)
        assert s.meaning.startswith("tell the restorer") and "\n" not in s.meaning


def test_sliders_start_at_the_estimate(x4, noisy):
    report = x4.analyze(noisy)
    start = core.slider_start(report)
    for s in core.SLIDERS:
        assert s.low <= start[s.name] <= s.high
        assert abs(start[s.name] - report.factors[s.name].value) <= s.step / 2 + 1e-9
    lines = core.describe(report).splitlines()
    assert len(lines) == 3 and all("+-" in line for line in lines)


def test_only_moved_sliders_intervene():
    start = {"blur": 0.8, "noise": 17.0, "jpeg": 100.0}
    assert core.interventions(start, start) == {}
    assert core.interventions({**start, "noise": 30.0}, start) == {"noise": 30.0}
    assert core.interventions({**start, "noise": 17.2}, start) == {}  # under half a step: not moved
    assert core.interventions({"blur": 9.0, "noise": 0.0, "jpeg": 100.0}, {}) == {"blur": 4.0, "noise": 0.0,
                                                                                 "jpeg": 100.0}
    assert core.format_do({}) == "blind (the model's own estimate)"
    assert core.format_do({"noise": 30.0, "jpeg": 60.0}) == "do(noise=30, jpeg=60)"


# ------------------------------------------------------------------ restoring
def test_without_do_the_result_is_the_blind_upscale(x4, noisy):
    out = core.restore(x4, noisy)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, x4.upscale(noisy))


def test_the_noise_slider_visibly_changes_the_result(x4, noisy):
    """The issue's bar: do(noise=0) vs do(noise=30) on a noisy upload differ by >= 2 grey levels on average."""
    smooth = core.restore(x4, noisy, {"noise": 30.0})
    grainy = core.restore(x4, noisy, {"noise": 0.0})
    change = np.abs(smooth.astype(np.float64) - grainy).mean()
    assert change >= 2.0, f"noise 0 -> 30 moved the result by only {change:.2f} grey levels"


def test_before_image_matches_the_output_size(noisy):
    assert core.before_image(noisy, 3).shape == (192, 192, 3)


# ------------------------------------------------------------------ result files
def test_results_are_unique_pngs_and_old_ones_are_pruned(tmp_path):
    img = photo(16, 24)
    a, b = core.save_result(img, tmp_path), core.save_result(img, tmp_path)
    assert a != b and a.suffix == ".png"
    np.testing.assert_array_equal(read_image(a).rgb, img)
    hour_ago = time.time() - 3600
    os.utime(a, (hour_ago, hour_ago))
    c = core.save_result(img, tmp_path, max_age_s=60)
    assert not a.exists() and b.exists() and c.exists()
    assert core.prune(tmp_path, max_age_s=-1) == 2 and not list(tmp_path.iterdir())
