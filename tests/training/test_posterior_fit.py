"""Posterior calibration for whole-image analysis (causalsr/training/posterior_fit.py, deviation 33)."""
import importlib.util
import math

import numpy as np
import pytest
import torch
from PIL import Image

from causalsr.cli.main import main
from causalsr.data.datasets import HRPatchDataset, collate
from causalsr.data.degradations import DegradationParams, SamplerConfig, degrade
from causalsr.factors import N_NAMED
from causalsr.models.causalsr import CausalSR
from causalsr.models.model_file import load_pretrained, save_pretrained, with_model_overrides
from causalsr.training.losses import named_factor_nll
from causalsr.training.posterior_fit import (
    BlurTwins,
    PosteriorFitConfig,
    PosteriorFitError,
    blur_rank_loss,
    collate_twins,
    fit_posterior,
    rate_factor,
)
from causalsr.yaml_config import to_dict
from helpers import REPO, tiny_config, write_images


def bundle_card(info, evals, note):
    """scripts/bundle_model.py's model card (a script, not a module of the package)."""
    spec = importlib.util.spec_from_file_location("bundle_model", REPO / "scripts" / "bundle_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.card(info, evals, note)


SAMPLER = SamplerConfig(p_clean=0.3, p_preset=0.3)


def _model(crop: int = 8) -> CausalSR:
    torch.manual_seed(0)
    return CausalSR(tiny_config(scale=2, posterior_crop=crop, posterior_spectrum=True,
                                semantic_args={"pretrained": False, "input_size": 64})).eval()


def _cfg(root, **kw) -> PosteriorFitConfig:
    base = dict(train_roots=[str(root)], lr_patch=16, steps=40, batch_size=8, lr=3e-3, num_workers=0,
                sampler=SAMPLER, log_every=1000)
    base.update(kw)
    return PosteriorFitConfig(**base)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("hr"), 6, 64)


def _held_out(images):
    """A fixed batch of 16-px LR images (2x2 crops of 8 px each), seeded apart from training."""
    data = HRPatchDataset([str(images)], 2, 32, SAMPLER, seed=123)
    return collate([data[i] for i in range(24)])


def _whole_image_nll_and_free(model, batch):
    with torch.no_grad():
        q = model.posterior(batch["lr"])  # q(Z | Y), as analyze sees a whole image
        return named_factor_nll(q, batch["factors"]).item(), q.mean[:, N_NAMED:]


def test_only_the_posterior_changes_and_whole_image_nll_falls(images):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = _held_out(images)
    nll0, _ = _whole_image_nll_and_free(model, batch)
    losses = fit_posterior(model, _cfg(images), log=None)
    nll1, _ = _whole_image_nll_and_free(model, batch)
    assert len(losses) == 40
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("posterior.") for k in changed)
    assert nll1 < nll0 - 0.5, (nll0, nll1)  # held-out images, never trained on as such


@pytest.mark.slow
def test_keep_term_anchors_the_unnamed_dimensions(images):
    batch = _held_out(images)
    drift = {}
    for w in (0.0, 100.0):
        model = _model()
        _, free0 = _whole_image_nll_and_free(model, batch)
        fit_posterior(model, _cfg(images, w_keep=w), log=None)
        _, free1 = _whole_image_nll_and_free(model, batch)
        drift[w] = (free1 - free0).abs().mean().item()
    assert drift[100.0] < 0.25 * drift[0.0], drift


@pytest.mark.parametrize("crop, lr_patch", [(0, 16), (8, 8)])
def test_needs_an_analysis_crop_smaller_than_the_training_images(images, crop, lr_patch):
    with pytest.raises(PosteriorFitError, match="posterior_crop"):
        fit_posterior(_model(crop), _cfg(images, lr_patch=lr_patch), log=None)


@pytest.mark.parametrize("device", ["tpu7", "cuda"])
def test_a_device_it_cannot_use_is_a_one_line_error(images, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PosteriorFitError, match=device):
        fit_posterior(model, _cfg(images, device=device), log=None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cli_writes_a_new_checkpoint_and_never_overwrites_the_input(images, tmp_path, capsys):
    src = tmp_path / "m"
    save_pretrained(_model(), src, {"training": {"steps": 7}})
    src_bytes = (tmp_path / "m.safetensors").read_bytes()
    common = ["--set", f"train_roots=[{images}]", "--set", "lr_patch=16", "--set", "steps=3", "--set", "batch_size=4",
              "--set", "num_workers=0"]
    assert main(["fit-posterior", str(src), "-o", str(src), *common]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["fit-posterior", str(src), "-o", str(tmp_path / "fit"), *common]) == 0
    assert (tmp_path / "m.safetensors").read_bytes() == src_bytes
    old, _ = load_pretrained(src)
    new, info = load_pretrained(tmp_path / "fit")
    assert info["posterior_fit"]["steps"] == 3 and info["training"] == {"steps": 7}
    assert info["posterior_fit"]["device"] and info["posterior_fit"]["wall_time_s"] >= 0  # what the card reports
    diff = {k for k, v in old.state_dict().items() if not torch.equal(v, new.state_dict()[k])}
    assert diff and all(k.startswith("posterior.") for k in diff)
    # A second calibration keeps the first one's record, and the model card lists both in order.
    again = ["fit-posterior", str(tmp_path / "fit"), "-o", str(tmp_path / "fit2"), *common, "--set", "steps=2"]
    assert main(again) == 0
    _, info2 = load_pretrained(tmp_path / "fit2")
    assert info2["posterior_fit"]["steps"] == 2 and info2["posterior_fit"]["previous"] == info["posterior_fit"]
    card = bundle_card(info2, [], "")
    first = card.index("calibration 1 of 2 | `causalsr fit-posterior`, 3 steps")
    assert first < card.index("calibration 2 of 2 | `causalsr fit-posterior`, 2 steps")


def test_cli_model_set_applies_before_fitting(images, tmp_path):
    src = tmp_path / "m0"
    save_pretrained(_model(crop=0), src)
    args = ["fit-posterior", str(src), "-o", str(tmp_path / "fit"), "--set", f"train_roots=[{images}]",
            "--set", "lr_patch=16", "--set", "steps=2", "--set", "batch_size=4", "--set", "num_workers=0"]
    assert main(args) == 2  # no analysis crop: nothing to calibrate
    assert main([*args, "--set", "device=cuda:7"]) == 2 or torch.cuda.device_count() > 7  # one line, nothing written
    assert not (tmp_path / "fit.safetensors").exists()
    assert main([*args, "--model-set", "posterior_crop=8"]) == 0
    assert load_pretrained(tmp_path / "fit")[1]["model_config"]["posterior_crop"] == 8


def test_rate_factor_warms_up_linearly_then_decays_like_cosine_annealing():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50)
    for step in range(50):  # without warm-up: torch's cosine annealing
        assert rate_factor(step, 50) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-9)
        opt.step()
        cosine.step()
    assert [rate_factor(s, 50, 4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert rate_factor(49, 50, 4) < 0.01


def test_a_posterior_grown_by_model_overrides_computes_the_same_then_fits(images):
    model = _model()
    info = {"model_config": to_dict(model.cfg)}
    grown = with_model_overrides(model, info, ["posterior_lr_depth=2"])
    assert info["model_config"]["posterior_lr_depth"] == 2 and len(grown.posterior.lr_blocks) == 2
    batch = _held_out(images)
    with torch.no_grad():
        assert torch.equal(model.posterior(batch["lr"]).mean, grown.posterior(batch["lr"]).mean)
    nll0, _ = _whole_image_nll_and_free(grown, batch)
    losses = fit_posterior(grown, _cfg(images, warmup_steps=5, grad_clip=1.0), log=None)
    nll1, _ = _whole_image_nll_and_free(grown, batch)
    assert all(math.isfinite(v) for v in losses) and nll1 < nll0 - 0.5, (nll0, nll1)
    assert all(blk.body[2].weight.abs().sum() > 0 for blk in grown.posterior.lr_blocks)
    # The noise-statistics branch grows the same way: nothing changes until it is trained.
    for option in ("posterior_noise_stats=true", "posterior_patch_noise=true"):
        noisy = with_model_overrides(model, {"model_config": to_dict(model.cfg)}, [option])
        with torch.no_grad():
            assert torch.equal(model.posterior(batch["lr"]).mean, noisy.posterior(batch["lr"]).mean)
    # Any other change of architecture is refused rather than half-loaded.
    with pytest.raises(ValueError, match="change the architecture"):
        with_model_overrides(_model(), {"model_config": to_dict(model.cfg)}, ["posterior_spectrum=false"])


def test_a_diverging_fit_is_a_one_line_error_and_the_cli_writes_nothing(images, tmp_path, capsys):
    with pytest.raises(PosteriorFitError, match="diverged at step"):
        fit_posterior(_model(), _cfg(images, lr=1e8), log=None)
    src = tmp_path / "m"
    save_pretrained(_model(), src)
    assert main(["fit-posterior", str(src), "-o", str(tmp_path / "fit"), "--set", f"train_roots=[{images}]",
                 "--set", "lr_patch=16", "--set", "steps=40", "--set", "batch_size=8", "--set", "num_workers=0",
                 "--set", "lr=1e8"]) == 1  # the run started and failed (2 is for runs that cannot start)
    err = capsys.readouterr().err.strip()
    assert "diverged" in err and "\n" not in err
    assert not (tmp_path / "fit.safetensors").exists()


def test_blur_twins_differ_only_in_the_blur(images):
    sampler = SamplerConfig(p_clean=0.0, p_preset=0.0, p_blur=0.5, p_noise=1.0)
    data = HRPatchDataset([str(images)], 2, 32, sampler, seed=5)
    twins = BlurTwins(data)
    seen = set()
    for i in range(12):
        a, b = twins[i]
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], data[i]["lr"])
        pa, pb = DegradationParams.from_dict(a["params"]), DegradationParams.from_dict(b["params"])
        assert (pa.blur_sigma is None) != (pb.blur_sigma is None)
        assert pb.blur_sigma in (None, (2.0, 2.0, 0.0)) and pb.blur_ksize in (0, 3)
        assert (pa.noise_sigma, pa.jpeg_quality, pa.seed) == (pb.noise_sigma, pb.jpeg_quality, pb.seed)
        assert torch.equal(b["lr"], degrade(b["hr"], pb))  # the twin is that degradation, same noise draw
        assert b["factors"][1:].tolist() == a["factors"][1:].tolist()
        seen.add(pa.blur_sigma is None)
    assert seen == {True, False}
    batch = collate_twins([twins[0], twins[1]])
    assert batch["lr"].shape[0] == 4 and torch.equal(batch["lr"][1], twins[0][1]["lr"])


def test_blur_rank_loss_is_a_paired_logistic_loss():
    mean = torch.tensor([0.5, 0.1, 0.2, 0.6], requires_grad=True)
    true = torch.tensor([2.0, 0.0, 0.0, 1.5])  # pair 1: blurred first; pair 2: blurred second
    loss = blur_rank_loss(mean, true, 0.1)
    expected = (math.log1p(math.exp(-4.0)) + math.log1p(math.exp(-4.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert mean.grad[0] < 0 < mean.grad[1] and mean.grad[3] < 0 < mean.grad[2]  # descent widens each gap
    assert blur_rank_loss(torch.tensor([0.1, 0.5]), torch.tensor([2.0, 0.0]), 0.1).item() > math.log(2)


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    """Fine texture, where a 3x3 blur before a x2 downscale is visible (the smooth images hide it)."""
    folder = tmp_path_factory.mktemp("textured")
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.uniform(0, 255, (64, 64, 3)).astype(np.uint8)).save(folder / f"t{i}.png")
    return folder


@pytest.mark.slow
def test_paired_term_teaches_twins_apart(textured):
    images = textured
    twins = BlurTwins(HRPatchDataset([str(images)], 2, 32, SAMPLER, seed=321))  # held out: another seed
    batch = collate_twins([twins[i] for i in range(12)])

    def correct_order(model):
        with torch.no_grad():
            mean = model.posterior(batch["lr"]).mean[:, 0].view(-1, 2)
        blurred_first = batch["factors"][:, 0].view(-1, 2)
        return ((mean[:, 0] > mean[:, 1]) == (blurred_first[:, 0] > blurred_first[:, 1])).float().mean().item()

    model = _model()
    before = correct_order(model)
    fit_posterior(model, _cfg(images, blur_twins=True, w_rank=1.0, steps=60), log=None)
    after = correct_order(model)
    assert after >= 0.75 and after > before, (before, after)
    with pytest.raises(PosteriorFitError, match="blur_twins"):
        fit_posterior(_model(), _cfg(images, w_rank=1.0), log=None)
