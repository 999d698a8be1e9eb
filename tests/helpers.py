"""Plain test helpers (data sets, a synthetic photo, tiny models, image folders); `from helpers import ...`.

pytest puts tests/ on sys.path for the root conftest, so every test file can import this module.
"""
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image, ImageFilter

from causalsr.data.datasets import DATA_ENV, find_dataset

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


def dataset_dir(name: str) -> Path:
    """The folder of a named set (Set5, ..., T91, BSD200, iqa-calibration); skips the test when it is absent."""
    folder = find_dataset(name)
    if folder is None:
        pytest.skip(_missing_reason(name))
    return folder


def _missing_reason(names: str) -> str:
    plural = "," in names
    return (f"data set{'s' if plural else ''} {names} not found: set {DATA_ENV} to a data folder "
            f"that holds {'them' if plural else 'it'} (docs/data.md)")


def requires_dataset(*names: str) -> pytest.MarkDecorator:
    """Mark: skip the test, with a one-line reason naming the set and {DATA_ENV}, unless every set is present.

    The data folder is looked up once, when the test module is imported (as the CLI does: `data_root()`).
    """
    missing = [n for n in names if find_dataset(n) is None]
    return pytest.mark.skipif(bool(missing), reason=_missing_reason(", ".join(missing)))


@functools.cache
def _photo(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Texture: 1/f ("pink") noise, as in natural images, one field per channel plus a shared one.
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width))
    fields = []
    for _ in range(4):
        spec = amp * (rng.normal(size=amp.shape) + 1j * rng.normal(size=amp.shape))
        f = np.fft.irfft2(spec, s=(height, width))
        fields.append((f - f.mean()) / f.std())
    img = 0.5 + 0.08 * (fields[0][..., None] + 0.4 * np.stack(fields[1:], -1))
    # Objects: "dead leaves", discs with power-law radii, each a flat colour with the texture showing through.
    yy, xx = np.mgrid[:height, :width]
    for _ in range(120):
        r = min(height, width) * 0.25 * rng.uniform(0.05, 1.0) ** 2.5 + 2
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        inside = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        colour = rng.uniform(0.05, 0.95, 3)
        texture = 0.06 * fields[int(rng.integers(4))][y0:y1, x0:x1, None]
        img[y0:y1, x0:x1][inside] = (colour + texture)[inside]
    u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return np.asarray(Image.fromarray(u8).filter(ImageFilter.GaussianBlur(0.6)))  # a lens: soft edges


def photo(height: int = 512, width: int = 512, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like RGB uint8 image (textured objects with soft edges, 1/f spectrum).

    For unit tests that need "some image": it stands in for a benchmark photo and needs no data folder.
    """
    return _photo(height, width, seed).copy()


def photo_image(height: int = 512, width: int = 512, seed: int = 0) -> Image.Image:
    """`photo` as a PIL RGB image."""
    return Image.fromarray(_photo(height, width, seed))


def jpeg_files(folder: Path, img: Image.Image, qualities) -> dict:
    """`img` saved by Pillow as folder/q{Q}.jpg at each quality: {quality: path}."""
    out = {}
    for q in qualities:
        out[q] = folder / f"q{q}.jpg"
        img.save(out[q], format="JPEG", quality=q)
    return out


def tiny_model(scale: int = 2, *, inference: bool = True, **overrides):
    """The tests' one small CausalSR: `tiny_config(scale, **overrides)`, built after `torch.manual_seed(0)`.

    inference=True (the default): in eval mode, with the zero-initialised conditioning parts of the restorer
    randomised so that Z and C change the output (as in a trained model). inference=False: as initialised, in
    training mode, for loss and gradient tests (the `make_tiny_model` fixture).
    """
    from causalsr.models.causalsr import CausalSR

    torch.manual_seed(0)
    model = CausalSR(tiny_config(scale, **overrides))
    if not inference:
        return model
    for name, p in model.restorer.named_parameters():
        if ".cond." in name or ".conv2." in name or name.startswith("upsample."):
            nn.init.normal_(p, std=0.03)  # the zero-initialised parts too, so Z and C change the output
    return model.eval()


def posterior_fit_model():
    """A tiny model `causalsr fit-posterior` can calibrate (8-px analysis crops, the spectrum input), eval mode."""
    return tiny_model(2, inference=False, posterior_crop=8, posterior_spectrum=True,
                      semantic_args={"pretrained": False, "input_size": 64}).eval()


def write_images(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    """Smooth random RGB images (low-frequency content an SR model can learn)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"img{i}.png")
    return folder


def tiny_config(scale: int = 2, **overrides):
    """A small ModelConfig (random-weight encoder at 64 px) for fast tests; `overrides` replace its keys."""
    from causalsr.models.config import ModelConfig

    base = dict(
        scale=scale, z_dim=6, posterior_feats=8, sct_dim=16, sct_heads=2, prior_hidden=8,
        mechanism_feats=4, intervention_hidden=16, contrast_dim=8,
        backbone_args={"n_feats": 8, "n_blocks": 1, "cond_hidden": 8},
        semantic_args={"input_size": 64},
    )
    base.update(overrides)
    return ModelConfig(**base)


def import_spandrel():
    """spandrel, imported; skip (naming the install) when it is not installed.

    spandrel 0.4's own import needs torchvision, for two of its architectures (LaMa, RestoreFormer), and
    torchvision does not import beside the pinned torch 2.13.0+cpu. Where torchvision is absent, spandrel is
    imported behind a stub of the three torchvision names those two modules import; the stub leaves
    sys.modules once spandrel is in, and the two architectures would fail only if called.
    """
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("spandrel") is None:
        pytest.skip("spandrel is not installed (scripts/setup.sh installs it: pip install --no-deps spandrel==0.4.2)")
    if importlib.util.find_spec("torchvision") is not None:
        import spandrel
        return spandrel

    def unavailable(*args, **kwargs):
        raise NotImplementedError("torchvision stub (tests/helpers.py::import_spandrel)")

    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = type("InterpolationMode", (), {"BILINEAR": "bilinear", "NEAREST": "nearest"})
    functional.rotate = functional.normalize = unavailable
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    stub = types.ModuleType("torchvision")
    stub.transforms = transforms
    names = {"torchvision": stub, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional}
    sys.modules.update(names)
    try:
        import spandrel
    finally:
        for name in names:
            sys.modules.pop(name, None)
    return spandrel
