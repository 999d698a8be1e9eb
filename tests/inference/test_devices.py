"""Devices (issue 15): one resolution rule for --device and the API, fp16 behind the probe, GPU tile sizes,
and out-of-memory handled by halving the tile (simulated here: this machine has no GPU)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from causalsr.cli.main import main
from causalsr.inference import upscaler
from causalsr.inference.devices import is_oom, resolve_device
from causalsr.inference.upscaler import Upscaler
from causalsr.metrics.psnr_ssim import psnr
from helpers import photo as make_photo
from helpers import tiny_model


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as a CPU-only one, even where a GPU is present."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("causalsr.inference.devices.mps_available", lambda: False)


def test_resolve_device(no_gpu, monkeypatch):
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("CPU")
    for name, words in [("cuda", "cuda: no CUDA device on this machine"), ("cuda:1", "cuda:1: no CUDA device"),
                        ("mps", "mps: no MPS"), ("gpu", "expected auto, cpu, cuda, cuda:N or mps")]:
        with pytest.raises(ValueError, match=words):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"cuda:3: this machine has 1 CUDA device \(cuda:0\)"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("argv", [
    ["upscale", "a.png", "-o", "out"],
    ["analyze", "a.png"],
    ["effects", "--datasets", "Set5", "--treatment", "noise=0:15"],
    ["eval", "--method", "causalsr", "--datasets", "Set5", "--scales", "4"],
    ["profile"],
    ["inspect", "x4"],
])
def test_absent_device_is_one_line_exit_2(argv, no_gpu, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for device, words in [("cuda", "--device cuda: no CUDA device on this machine"),
                          ("mps", "--device mps: no MPS (Apple GPU) device")]:
        assert main([*argv, "--device", device]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith(f"causalsr {argv[0]}: error: {words}"), err
    assert not any(tmp_path.iterdir())  # nothing written


def test_is_oom():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("MPS backend out of memory"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("out of memory"))


def _oom_above(monkeypatch, limit: int, error=torch.OutOfMemoryError) -> list[int]:
    """Make `_restore_tile` raise out-of-memory for tiles with a side over `limit`; returns the sides tried."""
    restore = Upscaler._restore_tile
    sides: list[int] = []

    def fake(self, lr, cond, tokens, box):
        sides.append(max(lr.shape[-2:]))
        if sides[-1] > limit:
            raise error("CUDA out of memory. Tried to allocate 20.00 GiB")
        return restore(self, lr, cond, tokens, box)

    monkeypatch.setattr(Upscaler, "_restore_tile", fake)
    return sides


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError])
def test_out_of_memory_halves_the_tile_and_matches_untiled(error, monkeypatch, caplog):
    lr = make_photo()[100:220, 150:310].copy()  # 120x160
    up = Upscaler(tiny_model())
    untiled = up.upscale(lr, tile=None)
    sides = _oom_above(monkeypatch, 64, error)
    with caplog.at_level(logging.WARNING, logger="causalsr"):
        out = up.upscale(lr, tile=None)
    assert sides[:2] == [160, 80] and set(sides[2:]) == {40}  # whole image, 80, then 40-pixel tiles
    assert psnr(untiled, out, y=False) >= 50
    retries = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(retries) == 2 and "retrying with 40-pixel tiles" in retries[-1]
    sides.clear()
    assert psnr(untiled, up.upscale(lr, tile="auto"), y=False) >= 50  # the next image starts at the tile that fit
    assert max(sides) == 40


def test_out_of_memory_at_the_smallest_tile_is_one_line(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from causalsr.models.model_file import save_pretrained

    save_pretrained(tiny_model(), tmp_path / "tiny")
    Image.fromarray(make_photo()[:80, :96].copy()).save(tmp_path / "a.png")
    _oom_above(monkeypatch, 8)
    with pytest.raises(MemoryError, match=r"^out of memory on cpu even with 32-pixel tiles; free memory$"):
        Upscaler(tiny_model()).upscale(make_photo()[:80, :96].copy(), tile=None)
    code = main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "tiny"),
                 "--device", "cpu", "--tile", "0"])
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1 and len(err) == 1 and "MemoryError: out of memory on cpu even with 32-pixel tiles" in err[0]


def test_fp16_needs_a_gpu_and_the_probe(monkeypatch, caplog):
    lr = make_photo()[100:148, 200:264].copy()
    up = Upscaler(tiny_model(), precision="fp16")
    with caplog.at_level(logging.WARNING, logger="causalsr"):
        out = up.upscale(lr)
    np.testing.assert_array_equal(out, up.upscale(lr, precision="fp32"))
    assert any("fp16 runs on a GPU" in r.getMessage() for r in caplog.records)
    # on a GPU fp16 goes through the same probe as bf16: a failed probe falls back to fp32
    probed: list[tuple[str, torch.dtype]] = []
    monkeypatch.setattr(up, "device", torch.device("mps"))
    monkeypatch.setattr(up, "_half_is_safe", lambda lr, cond, name, dtype: probed.append((name, dtype)) and False)
    assert up._half_dtype("fp16", torch.zeros(1, 3, 8, 8), None) is None
    assert probed == [("fp16", torch.float16)]


def test_auto_tile_from_free_gpu_memory(monkeypatch):
    up = Upscaler(tiny_model())
    bpp = up.bytes_per_lr_pixel()
    monkeypatch.setattr(upscaler, "free_gpu_memory", lambda device: int(2 * bpp * 300 * 300))
    assert up.resolve_tile("auto", (2000, 2000)) == 288  # half the free memory: 300**2 pixels, to a multiple of 16
    assert up.resolve_tile("auto", (200, 280)) is None  # fits whole
    monkeypatch.setattr(upscaler, "free_gpu_memory", lambda device: int(2 * bpp * 5000 * 5000))
    assert up.resolve_tile("auto", (4000, 4000)) == upscaler.GPU_MAX_TILE
