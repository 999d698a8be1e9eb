"""ONNX export of the whole pipeline: parity with PyTorch at two sizes, Z override; safetensors re-export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from causalsr.cli.main import main
from causalsr.inference.export import export_onnx
from causalsr.models.causalsr import load_pretrained, save_pretrained
from helpers import photo_image, tiny_model

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    assert not model.training  # the export leaves the model's mode alone
    return model, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _lr(size: tuple[int, int]) -> torch.Tensor:
    """A photo-like image, downscaled 2x (larger than the encoder input, so it antialiases)."""
    hr = photo_image().crop((100, 80, 100 + 2 * size[1], 80 + 2 * size[0]))
    lr = np.asarray(hr.resize((size[1], size[0]), Image.BICUBIC), dtype=np.float32) / 255.0
    return torch.from_numpy(lr).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("size", [(72, 96), (101, 83)])
def test_onnx_matches_pytorch_with_dynamic_shapes(exported, size):
    model, sess = exported
    lr = _lr(size)
    z_dim = model.cfg.z_dim
    sr, z = sess.run(None, {"lr": lr.numpy(), "z_override": np.zeros((1, z_dim), np.float32),
                            "use_z_override": np.zeros(1, np.float32)})
    with torch.no_grad():
        ref = model(lr)
        z_ref = model.infer_z(lr).mean
    assert sr.shape == (1, 3, 2 * size[0], 2 * size[1])
    assert np.abs(sr - ref.numpy()).max() <= 1e-3
    assert np.abs(z - z_ref.numpy()).max() <= 1e-4


def test_onnx_z_override(exported):
    model, sess = exported
    lr = _lr((40, 48))
    with torch.no_grad():
        cond = model.condition(lr)
        z_new = model.do(cond[0], cond[2], {1: 0.0})
        ref = model.restore(lr, z_new, cond[1], cond[2])
    sr, _ = sess.run(None, {"lr": lr.numpy(), "z_override": z_new.numpy(), "use_z_override": np.ones(1, np.float32)})
    assert np.abs(sr - ref.numpy()).max() <= 1e-3


def test_export_rejects_old_opset(tmp_path):
    with pytest.raises(ValueError, match="opset 18"):
        export_onnx(tiny_model(), tmp_path / "x.onnx", opset=17)
    assert not list(tmp_path.iterdir())


def test_export_cli_onnx_and_safetensors(tmp_path, capsys):
    save_pretrained(tiny_model(), tmp_path / "tiny", {"note": "kept"})
    out = tmp_path / "pipe.onnx"
    assert main(["export", "--format", "onnx", "--model", str(tmp_path / "tiny"), str(out)]) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["lr", "z_override", "use_z_override"]
    assert main(["export", "--format", "safetensors", "--model", str(tmp_path / "tiny"), str(tmp_path / "re")]) == 0
    model, meta = load_pretrained(tmp_path / "re")
    assert meta["note"] == "kept" and meta["scale"] == 2
    assert json.loads((tmp_path / "re.json").read_text())["arch"] == "causalsr"
    capsys.readouterr()
    assert main(["export", "--scale", "4", "--model", str(tmp_path / "tiny"), str(tmp_path / "y.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "x2 model, not x4" in err and len(err.splitlines()) == 1
    assert main(["export", "--model", str(tmp_path / "missing"), str(tmp_path / "z.onnx")]) == 2
    assert main(["export", "--model", str(tmp_path / "tiny"), str(tmp_path / "no" / "dir.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
