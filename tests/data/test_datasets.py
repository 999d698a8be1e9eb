"""Datasets: benchmark resolution, HR patch dataset determinism and consistency, paired folders."""
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from causalsr.data.datasets import HRPatchDataset, PairedDataset, collate, resolve_dataset
from causalsr.data.degradations import DegradationParams, SamplerConfig, degrade
from causalsr.data.imageio import write_image

SHARED = Path(__file__).resolve().parents[3] / "shared/data/benchmarks"


def _img(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def hr_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    images = {"a": _img(rng, 40, 52), "b": _img(rng, 48, 48), "tiny": _img(rng, 10, 30)}
    for name, img in images.items():
        write_image(folder / f"{name}.png", img)
    (folder / "notes.txt").write_text("ignored")
    return folder, images


def test_resolve_benchmark_names_via_env(tmp_path, monkeypatch):
    for name in ("Set5", "BSD100"):
        (tmp_path / "benchmarks" / name / "HR").mkdir(parents=True)
        write_image(tmp_path / "benchmarks" / name / "HR" / "x.png", np.zeros((4, 4, 3), np.uint8))
    monkeypatch.setenv("CAUSALSR_DATA", str(tmp_path))
    assert resolve_dataset("set5") == ("Set5", [tmp_path / "benchmarks/Set5/HR/x.png"])
    assert resolve_dataset("B100")[0] == "BSD100"
    with pytest.raises(FileNotFoundError, match="Urban100"):
        resolve_dataset("Urban100")
    with pytest.raises(ValueError, match="unknown dataset 'Set6'"):
        resolve_dataset("Set6")


def test_resolve_folder(hr_folder, tmp_path):
    folder, _ = hr_folder
    name, files = resolve_dataset(folder)
    assert name == "imgs" and [f.name for f in files] == ["a.png", "b.png", "tiny.png"]
    (tmp_path / "Mine" / "HR").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        resolve_dataset(tmp_path / "Mine" / "HR")
    write_image(tmp_path / "Mine" / "HR" / "z.jpg", np.zeros((4, 4, 3), np.uint8))
    assert resolve_dataset(tmp_path / "Mine" / "HR")[0] == "Mine"


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared benchmark data not present")
def test_resolve_shared_benchmarks(monkeypatch):
    monkeypatch.delenv("CAUSALSR_DATA", raising=False)
    name, files = resolve_dataset("Set5")
    assert name == "Set5" and [f.stem for f in files] == ["baby", "bird", "butterfly", "head", "woman"]
    assert len(resolve_dataset("b100")[1]) == 100


def _is_dihedral_crop(patch, image):
    """True if `patch` equals a rotated/flipped window of `image`."""
    p = patch.shape[0]
    windows = sliding_window_view(image, (p, p, 3))[:, :, 0]
    for k in range(4):
        for cand in (np.rot90(patch, -k), np.rot90(patch, -k)[:, ::-1]):
            if (windows == np.ascontiguousarray(cand)).all(axis=(2, 3, 4)).any():
                return True
    return False


def test_hr_patch_dataset(hr_folder):
    folder, images = hr_folder
    with pytest.warns(UserWarning, match="smaller than patch_size"):
        ds = HRPatchDataset(folder, scale=4, patch_size=32, seed=3, repeat=3)
    assert len(ds) == 6 and ds.names == ["a", "b"]
    s = ds[4]
    assert s["hr"].shape == (3, 32, 32) and s["lr"].shape == (3, 8, 8)
    assert s["hr"].dtype == s["lr"].dtype == s["factors"].dtype == torch.float32
    params = DegradationParams.from_dict(s["params"])
    np.testing.assert_array_equal(s["factors"].numpy(), params.factors())
    assert torch.equal(s["lr"], degrade(s["hr"], params))  # LR is exactly the stated degradation of HR
    hr_u8 = (s["hr"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert _is_dihedral_crop(hr_u8, images[s["name"]])
    again = ds[4]
    assert torch.equal(again["hr"], s["hr"]) and torch.equal(again["lr"], s["lr"]) and again["params"] == s["params"]
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["hr"], s["hr"])
    ds.set_epoch(0)
    assert torch.equal(ds[4]["lr"], s["lr"])


def test_hr_patch_dataset_errors_and_sampler_cfg(hr_folder):
    folder, _ = hr_folder
    with pytest.raises(ValueError, match="multiple of the scale"):
        HRPatchDataset(folder, scale=3, patch_size=32)
    with pytest.raises(ValueError, match="at least 64x64"), pytest.warns(UserWarning):
        HRPatchDataset(folder, scale=4, patch_size=64)
    cfg = SamplerConfig(p_clean=1.0, p_preset=0.0)
    ds = HRPatchDataset([folder], scale=2, patch_size=8, sampler_cfg=cfg)
    assert all(ds[i]["factors"].tolist() == [0.0, 0.0, 100.0] for i in range(len(ds)))


def test_paired_dataset(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "lr").mkdir()
    (tmp_path / "hr").mkdir()
    lrs = {}
    for name in ("p1", "p2"):
        lr = _img(rng, 12, 10)
        hr = np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)  # nearest upsampling: HR[::2, ::2] == LR
        hr = np.concatenate([hr, hr[-1:]], axis=0)  # one extra HR row is cropped away
        write_image(tmp_path / "hr" / f"{name}.png", hr)
        write_image(tmp_path / "lr" / f"{name}x2.png", lr)
        lrs[name] = lr
    ds = PairedDataset(tmp_path / "lr", tmp_path / "hr", scale=2, patch_size=8, seed=0)
    assert len(ds) == 2
    for i in range(2):
        s = ds[i]
        assert s["hr"].shape == (3, 8, 8) and s["lr"].shape == (3, 4, 4)
        torch.testing.assert_close(s["hr"][:, ::2, ::2], s["lr"])  # patches are aligned
        assert torch.isnan(s["factors"]).all() and s["params"] is None
    full = PairedDataset(tmp_path / "lr", tmp_path / "hr", scale=2)[0]
    assert full["hr"].shape == (3, 24, 20)
    batch = collate([ds[0], ds[1]])
    assert batch["hr"].shape == (2, 3, 8, 8) and batch["params"] == [None, None] and batch["name"] == ["p1", "p2"]
    write_image(tmp_path / "lr" / "orphan.png", lrs["p1"])
    with pytest.raises(ValueError, match="without an HR match"):
        PairedDataset(tmp_path / "lr", tmp_path / "hr", scale=2)
    (tmp_path / "lr" / "orphan.png").unlink()
    write_image(tmp_path / "hr" / "p2.png", _img(rng, 30, 20))
    with pytest.raises(ValueError, match="p2.png: size 20x30 does not match p2x2.png 10x12 at scale 2"):
        PairedDataset(tmp_path / "lr", tmp_path / "hr", scale=2)[1]


def test_collate_keeps_params_list(hr_folder):
    folder, _ = hr_folder
    with pytest.warns(UserWarning):
        ds = HRPatchDataset(folder, scale=2, patch_size=16, seed=1)
    batch = collate([ds[0], ds[1]])
    assert batch["lr"].shape == (2, 3, 8, 8) and batch["factors"].shape == (2, 3)
    assert isinstance(batch["params"], list) and batch["params"][1] == ds[1]["params"]
