"""ONNX export: both graphs agree with PyTorch at every input size (Z and SR), the blind graph's one input and
dynamic batch, Z override, the posterior's traceable crop rule; safetensors re-export.

Measured on CPU (onnxruntime 1.32, torch 2.13), bundled x2/x3/x4 at 1x1 ... 300x200: |z - z_torch| <= 8e-7,
|sr - sr_torch| <= 2e-5 (x3 at 300x200; x2 and x4 <= 4e-7). The tolerances below leave 10x or more of room.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import causalsr
from causalsr.cli.main import main
from causalsr.inference.export import export_onnx
from causalsr.models.causalsr import CausalSR
from causalsr.models.model_file import load_pretrained, save_pretrained
from causalsr.models.posterior import DegradationPosterior
from helpers import photo, photo_image, tiny_model

ort = pytest.importorskip("onnxruntime")

Z_TOL = 1e-5
SR_TOL = 2e-4
# The sizes (sides under 64 px, the 86x57 LR of Set5 woman), tiny ones (the spectrum's padding), and one
# above the posterior's crop thresholds (analysis crops of the bundled models; max_side 256 of the default rule).
SIZES = [(48, 48), (63, 64), (86, 57), (5, 7), (24, 24), (300, 270)]
BUNDLED_SIZES = [(24, 24), (48, 48), (63, 64), (86, 57), (300, 200)]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _graphs(model, folder):
    return model, _session(export_onnx(model, folder / "do.onnx")), _session(export_onnx(model, folder / "blind.onnx",
                                                                                          blind=True))


def _analysis_crop_tiny():
    """The tiny model with the bundled models' posterior: block spectrum, 24-px analysis crops and the
    noise statistics and patch noise (their zero-initialised last layers drawn at random, so that they act)."""
    base = tiny_model()
    torch.manual_seed(1)
    model = CausalSR(replace(base.cfg, posterior_spectrum=True, posterior_crop=24, posterior_noise_stats=True,
                                  posterior_patch_noise=True))
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    grown = ("posterior.spectrum_mlp.", "posterior.noise_mlp.", "posterior.patch_noise_mlp.")
    assert not unexpected and all(k.startswith(grown) for k in missing)
    torch.nn.init.normal_(model.posterior.noise_mlp[2].weight, std=0.1)
    torch.nn.init.normal_(model.posterior.patch_noise_mlp[2].weight, std=0.1)
    return model.eval()


@pytest.fixture(scope="module", params=["default-crops", "analysis-crops"])
def exported(request, tmp_path_factory):
    model = tiny_model() if request.param == "default-crops" else _analysis_crop_tiny()
    graphs = _graphs(model, tmp_path_factory.mktemp("onnx"))
    assert not model.training  # the export leaves the model's mode alone
    return graphs


def _lr(size: tuple[int, int]) -> torch.Tensor:
    """A photo-like image, downscaled 2x (larger than the encoder input, so it antialiases)."""
    hr = photo_image(720, 720).crop((100, 80, 100 + 2 * size[1], 80 + 2 * size[0]))
    lr = np.asarray(hr.resize((size[1], size[0]), Image.BICUBIC), dtype=np.float32) / 255.0
    return torch.from_numpy(lr).permute(2, 0, 1)[None].contiguous()


def _check(model, do_sess, blind_sess, lr: torch.Tensor) -> tuple[float, float]:
    """Both graphs against PyTorch on `lr`; returns (max |z diff|, max |sr diff|)."""
    n, z_dim = lr.shape[0], model.cfg.z_dim
    sr, z = do_sess.run(None, {"lr": lr.numpy(), "z_override": np.zeros((n, z_dim), np.float32),
                               "use_z_override": np.zeros(n, np.float32)})
    (blind,) = blind_sess.run(None, {"input": lr.numpy()})
    with torch.no_grad():
        ref = model(lr).numpy()
        z_ref = model.infer_z(lr).mean.numpy()
    s = model.scale
    assert sr.shape == blind.shape == (n, 3, s * lr.shape[2], s * lr.shape[3])
    dz, dsr = float(np.abs(z - z_ref).max()), float(np.abs(sr - ref).max())
    assert dz <= Z_TOL, dz
    assert dsr <= SR_TOL, dsr
    assert np.abs(blind - ref).max() <= SR_TOL
    return dz, dsr


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_onnx_matches_pytorch_at_any_size(exported, size):
    _check(*exported, _lr(size))


def test_blind_graph_has_one_input_and_a_dynamic_batch(exported):
    model, do_sess, blind_sess = exported
    assert [i.name for i in blind_sess.get_inputs()] == ["input"]
    assert [o.name for o in blind_sess.get_outputs()] == ["output"]
    assert blind_sess.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    a, b = _lr((40, 52)), torch.from_numpy(photo(40, 52, seed=5)).permute(2, 0, 1)[None].float() / 255
    pair = torch.cat([a, b])
    (both,) = blind_sess.run(None, {"input": pair.numpy()})
    singles = np.concatenate([blind_sess.run(None, {"input": x.numpy()})[0] for x in (a, b)])
    assert np.abs(both - singles).max() <= 1e-5
    _check(model, do_sess, blind_sess, pair)  # each image gets its own Z, in both graphs, as in PyTorch


def test_onnx_z_override(exported):
    model, sess, _ = exported
    lr = _lr((40, 48))
    with torch.no_grad():
        cond = model.condition(lr)
        z_new = model.do(cond[0], cond[2], {1: 0.0})
        ref = model.restore(lr, z_new, cond[1], cond[2])
    sr, _ = sess.run(None, {"lr": lr.numpy(), "z_override": z_new.numpy(), "use_z_override": np.ones(1, np.float32)})
    assert np.abs(sr - ref.numpy()).max() <= SR_TOL


@pytest.mark.parametrize("crop,per_axis", [(24, 8), (32, 8), (128, 2)])
def test_crop_slots_equal_the_crop_offsets(crop, per_axis):
    post = DegradationPosterior(analysis_crop=crop if per_axis == 8 else 0)
    for size in range(1, 700):
        starts, keep = post._crop_slots(torch.tensor(size), crop, per_axis)
        assert starts[keep].tolist() == post._crop_offsets(size, crop, per_axis), size
        assert int(starts.max()) + min(size, crop) <= size  # every slot's crop is a full-size crop


@pytest.mark.parametrize("crop", [0, 24])
def test_traceable_embed_equals_embed(crop):
    """The tensor-op crop rule the ONNX trace records computes eager PyTorch's pooled features at any size."""
    torch.manual_seed(0)
    post = DegradationPosterior(scale=2, z_dim=4, n_feats=8, spectrum=True, analysis_crop=crop).eval()
    img = torch.from_numpy(photo(600, 600, seed=2)).permute(2, 0, 1)[None].float() / 255
    for h, w in [(1, 1), (5, 30), (24, 24), (25, 24), (48, 48), (63, 64), (86, 57), (257, 40), (270, 300)]:
        lr = img[..., :h, :w]
        hr = torch.rand(1, 3, 2 * h, 2 * w)
        with torch.no_grad():
            for x in (None, hr):
                ref = post.embed(lr, x)
                got = post._embed_traceable(lr, x, None if x is None else torch.zeros(1, dtype=torch.bool))
                assert (got - ref).abs().max() <= 1e-6 * ref.abs().max(), (h, w)


def _bundled_graphs(name, folder):
    try:
        up = causalsr.load(name)
    except (FileNotFoundError, ImportError) as e:
        pytest.skip(f"bundled model {name} unavailable: {e}")
    return _graphs(up.model, folder)


def _bundled_check(name, tmp_path):
    graphs = _bundled_graphs(name, tmp_path)
    img = photo(400, 400, seed=7)
    for h, w in BUNDLED_SIZES:
        lr = torch.from_numpy(img[:h, :w]).permute(2, 0, 1)[None].float().div(255).contiguous()
        _check(*graphs, lr)
    model, _, blind = graphs
    pair = torch.from_numpy(np.stack([img[:37, :45], img[50:87, 9:54]])).permute(0, 3, 1, 2).float().div(255)
    (both,) = blind.run(None, {"input": pair.numpy()})
    singles = np.concatenate([blind.run(None, {"input": x[None].numpy()})[0] for x in pair])
    assert np.abs(both - singles).max() <= 1e-5
    assert [i.name for i in blind.get_inputs()] == ["input"] and len(blind.get_outputs()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["x4", "x2", "x3"])
def test_bundled_onnx_matches_pytorch(name, tmp_path):
    _bundled_check(name, tmp_path)


def test_export_rejects_old_opset(tmp_path):
    with pytest.raises(ValueError, match="opset 18"):
        export_onnx(tiny_model(), tmp_path / "x.onnx", opset=17)
    assert not list(tmp_path.iterdir())


def test_export_cli_onnx_and_safetensors(tmp_path, capsys):
    save_pretrained(tiny_model(), tmp_path / "tiny", {"note": "kept"})
    out = tmp_path / "pipe.onnx"
    assert main(["export", "--format", "onnx", "--model", str(tmp_path / "tiny"), "-o", str(out)]) == 0
    sess = _session(out)
    assert [i.name for i in sess.get_inputs()] == ["lr", "z_override", "use_z_override"]
    blind = tmp_path / "blind.onnx"
    capsys.readouterr()
    # the older spelling, OUT as a positional, still works and says which spelling to use
    assert main(["export", "--format", "onnx", "--blind", "--model", str(tmp_path / "tiny"), str(blind)]) == 0
    assert "deprecated; use -o/--output" in capsys.readouterr().err
    sess = _session(blind)
    assert [i.name for i in sess.get_inputs()] == ["input"] and [o.name for o in sess.get_outputs()] == ["output"]
    re_out = str(tmp_path / "re")
    assert main(["export", "--format", "safetensors", "--model", str(tmp_path / "tiny"), "-o", re_out]) == 0
    model, meta = load_pretrained(tmp_path / "re")
    assert meta["note"] == "kept" and meta["scale"] == 2
    assert json.loads((tmp_path / "re.json").read_text())["arch"] == "causalsr"
    capsys.readouterr()
    assert main(["export", "--format", "safetensors", "--blind", "--model", str(tmp_path / "tiny"),
                 "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--blind" in err and len(err.splitlines()) == 1
    assert main(["export", "--scale", "4", "--model", str(tmp_path / "tiny"), "-o", str(tmp_path / "y.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "x2 model, not x4" in err and len(err.splitlines()) == 1
    assert main(["export", "--model", str(tmp_path / "missing"), "-o", str(tmp_path / "z.onnx")]) == 2
    assert main(["export", "--model", str(tmp_path / "tiny"), "-o", str(tmp_path / "no" / "dir.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "tiny")]) == 2
    assert "-o/--output" in capsys.readouterr().err
