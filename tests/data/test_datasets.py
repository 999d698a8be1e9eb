"""Datasets: benchmark resolution, HR patch dataset determinism and consistency, paired folders."""
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from causalsr.data import datasets
from causalsr.data.datasets import HRPatchDataset, PairedDataset, collate, resolve_dataset
from causalsr.data.degradations import DegradationParams, SamplerConfig, degrade
from causalsr.data.imageio import write_image
from helpers import requires_dataset


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


def _data_folder(root, benchmarks=("Set5",), train=("T91",)):
    folders = [root / "benchmarks" / name / "HR" for name in benchmarks] + [root / "train" / name for name in train]
    for folder in folders:
        folder.mkdir(parents=True)
        write_image(folder / "x.png", np.zeros((4, 4, 3), np.uint8))
    return root


def test_training_sets_resolve_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("CAUSALSR_DATA", str(_data_folder(tmp_path)))
    assert resolve_dataset("T91") == ("T91", [tmp_path / "train/T91/x.png"])
    with pytest.raises(FileNotFoundError, match="training set BSD200 not found in CAUSALSR_DATA="):
        resolve_dataset("bsd200")


def test_explicit_data_root_that_is_missing_means_no_data(tmp_path, monkeypatch):
    """CAUSALSR_DATA set to a missing folder never falls back to the default ../shared/data."""
    (tmp_path / "work").mkdir()
    _data_folder(tmp_path / "shared" / "data")
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv("CAUSALSR_DATA", raising=False)
    assert datasets.data_root() == tmp_path / "shared" / "data"  # the default, beside the working directory
    monkeypatch.setenv("CAUSALSR_DATA", str(tmp_path / "nonexistent"))
    assert datasets.data_root() is None and datasets.find_dataset("Set5") is None
    with pytest.raises(FileNotFoundError, match="CAUSALSR_DATA="):
        resolve_dataset("Set5")
    with pytest.raises(FileNotFoundError, match="CAUSALSR_DATA"):
        datasets.benchmark_root()


def test_set_data_root_overrides_the_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_data_root_override", None)  # restored after the test
    monkeypatch.setenv("CAUSALSR_DATA", str(tmp_path / "nonexistent"))
    datasets.set_data_root(_data_folder(tmp_path / "d", benchmarks=("Set14",)))
    assert datasets.benchmark_root() == tmp_path / "d" / "benchmarks"
    assert datasets.find_dataset("set14") == tmp_path / "d" / "benchmarks" / "Set14" / "HR"
    assert datasets.find_dataset("Set5") is None
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.find_dataset("Set6")
    datasets.set_data_root(None)
    assert datasets.data_root() is None


@requires_dataset("Set5", "BSD100")
def test_resolve_installed_benchmarks():
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
