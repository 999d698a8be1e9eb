"""`eval` conditioning on a tiny random model: oracle feeds the true factors, --do goes through do(), errors, JSON."""
import json

import numpy as np
import pytest
import torch

from causalsr.cli.main import main
from causalsr.data.degradations import parse_degradation
from causalsr.data.imageio import read_image
from causalsr.data.imresize import crop_to_multiple
from causalsr.evaluation.harness import evaluate, image_seed, make_lr_cached
from causalsr.evaluation.methods import Bicubic, load_method, tell_factors
from causalsr.factors import N_NAMED, normalise
from causalsr.inference.api import normalise_do
from causalsr.models.model_file import save_pretrained
from helpers import tiny_config, tiny_model, write_images

SPEC = "gblur:1.5+noise:10+jpeg:50"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained(tiny_model(scale=2), path)
    return str(path)


@pytest.fixture(scope="module")
def plain_path(tmp_path_factory) -> str:
    from causalsr.models.causalsr import CausalSR

    path = tmp_path_factory.mktemp("plain") / "plain"
    save_pretrained(CausalSR(tiny_config(scale=2, plain=True)).eval(), path)
    return str(path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("imgs") / "mini", 2, 32)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _recorded(method, monkeypatch):
    """Record the Z that the model's restorer is called with (skipping the API's memory probe, which has no Z)."""
    up = method.upscaler(2)
    seen = []
    restore = up.model.restore

    def spy(lr, z, tokens, pooled, ctx_box=None):
        if z is not None:
            seen.append(z.detach().clone())
        return restore(lr, z, tokens, pooled, ctx_box=ctx_box)

    monkeypatch.setattr(up.model, "restore", spy)
    return up, seen


def _lrs(images, spec, cache):
    out = []
    for p in sorted(images.iterdir()):
        hr = crop_to_multiple(read_image(p).rgb, 2)
        out.append(make_lr_cached(hr, 2, spec, cache))
    return out


def test_oracle_feeds_the_true_factors(model_path, images, tmp_path, monkeypatch):
    method = load_method(model_path)
    up, seen = _recorded(method, monkeypatch)
    cache = tmp_path / "lr"
    (oracle,) = evaluate(method, [str(images)], [2], SPEC, lr_cache=cache, progress=False, condition="oracle")
    told, seen[:] = list(seen), []
    (blind,) = evaluate(method, [str(images)], [2], SPEC, lr_cache=cache, progress=False)
    assert len(told) == len(seen) == 2 and not oracle.failures
    truth = normalise(torch.tensor([1.5, 10.0, 50.0]))
    for z_told, z_blind, lr in zip(told, seen, _lrs(images, SPEC, cache)):
        torch.testing.assert_close(z_told[0, :N_NAMED], truth.to(z_told.dtype))
        torch.testing.assert_close(z_told[0, N_NAMED:], z_blind[0, N_NAMED:])  # the rest of Z: the posterior's
        with torch.no_grad():  # blind is the posterior mean of this very LR
            q = up.model.infer_z(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)
        torch.testing.assert_close(z_blind, q.mean)
        assert not torch.allclose(z_blind[0, :N_NAMED], truth, atol=1e-3)
    assert oracle.per_image[0]["psnr"] != blind.per_image[0]["psnr"]  # the told Z changes the restoration
    assert (oracle.condition, blind.condition) == ("oracle", "blind")
    assert oracle.to_dict()["true_factors"] == {"blur": 1.5, "noise": 10.0, "jpeg": 50.0}


def test_oracle_on_a_clean_image_tells_no_blur_no_noise_jpeg_100(model_path, images, tmp_path, monkeypatch):
    method = load_method(model_path)
    _, seen = _recorded(method, monkeypatch)
    evaluate(method, [str(images)], [2], "clean", lr_cache=tmp_path, progress=False, condition="oracle")
    for z in seen:
        torch.testing.assert_close(z[0, :N_NAMED], torch.tensor([0.0, 0.0, 1.0]))


def test_tell_factors_overwrites_only_the_given_dims(model_path):
    up = load_method(model_path).upscaler(2)
    cond = up.condition(np.full((12, 12, 3), 100, np.uint8))
    told = tell_factors(cond, {0: 0.25, 2: 0.5})
    assert told.z[0, 0] == 0.25 and told.z[0, 2] == 0.5
    torch.testing.assert_close(told.z[0, [1, 3]], cond.z[0, [1, 3]])
    assert told.pooled is cond.pooled and told.tokens is cond.tokens and cond.z[0, 0] != 0.25  # input unchanged


def test_do_goes_through_the_models_do(model_path, images, tmp_path, monkeypatch):
    method = load_method(model_path)
    up, seen = _recorded(method, monkeypatch)
    cache = tmp_path / "lr"
    (r,) = evaluate(method, [str(images)], [2], "noise:15", lr_cache=cache, progress=False, do={"noise": 50.0})
    assert r.do == {"noise": 50.0} and len(seen) == 2
    for z, lr in zip(seen, _lrs(images, "noise:15", cache)):
        cond = up.condition(lr)
        with torch.no_grad():
            expected = up.model.do(cond.z, cond.pooled, normalise_do({"noise": 50.0}))
        torch.testing.assert_close(z, expected)
        assert z[0, 1] == 1.0 and not torch.equal(z, cond.z)
    (plain_run,) = evaluate(method, [str(images)], [2], "noise:15", lr_cache=cache, progress=False)
    assert r.per_image[0]["psnr"] != plain_run.per_image[0]["psnr"]


def test_harness_errors_name_the_option(model_path, plain_path, images, tmp_path):
    kw = dict(lr_cache=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"^--condition oracle: .*unknown"):
        evaluate(load_method(model_path), [str(images)], [2], "blur+noise", condition="oracle", **kw)
    with pytest.raises(ValueError, match=r"^--do: .*bicubic"):
        evaluate(Bicubic(), [str(images)], [2], "noise", do={"noise": 0.0}, **kw)
    with pytest.raises(ValueError, match=r"^--condition oracle: .*bicubic"):
        evaluate(Bicubic(), [str(images)], [2], "noise", condition="oracle", **kw)
    with pytest.raises(ValueError, match=r"^--do: .*plain"):
        evaluate(load_method(plain_path), [str(images)], [2], "noise", do={"noise": 0.0}, **kw)
    with pytest.raises(ValueError, match=r"^--do: unknown degradation factor 'grain'"):
        evaluate(load_method(model_path), [str(images)], [2], "noise", do={"grain": 0.0}, **kw)
    with pytest.raises(ValueError, match=r"^--degradation: bad part 'noise:99'"):
        evaluate(Bicubic(), [str(images)], [2], ["noise", "noise:99"], **kw)


@pytest.mark.parametrize("extra, words", [
    (["--degradation", "noise:25+jpeg:5"], ["--degradation", "'jpeg:5'", "10..100"]),
    (["--degradation", "bicubic", "fog:3"], ["--degradation", "'fog:3'", "unknown kind"]),
    (["--do", "grain=3"], ["--do", "'grain=3'", "unknown degradation factor"]),
    (["--do", "noise=80"], ["--do", "'noise=80'", "0..50"]),
    (["--do", "noise"], ["--do", "FACTOR=VALUE"]),
    (["--do", "noise=1", "noise=2"], ["--do", "twice"]),
    (["--degradation", "blur", "--condition", "oracle"], ["--condition oracle", "unknown"]),
])
def test_cli_errors_are_one_line_naming_the_option(extra, words, model_path, images, capsys):
    rc = main(["eval", "--method", model_path, "--datasets", str(images), "--scales", "2", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_cli_do_on_bicubic_and_plain_models(plain_path, images, capsys):
    assert main(["eval", "--method", "bicubic", "--datasets", str(images), "--scales", "2", "--do", "noise=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--do" in err and "bicubic" in err
    assert main(["eval", "--method", plain_path, "--datasets", str(images), "--scales", "2", "--do", "noise=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--do" in err and "plain" in err


def test_cli_json_is_self_describing(model_path, images, tmp_path, capsys):
    out = tmp_path / "res.json"
    saved = tmp_path / "sr"
    rc = main(["eval", "--method", model_path, "--datasets", str(images), "--scales", "2",
               "--degradation", "noise:15", "noise:25+jpeg:50+gblur:1.5", "--condition", "oracle",
               "--do", "jpeg=90", "--json", str(out), "--save-images", str(saved)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "| tiny [oracle, do(jpeg=90)] | mini | x2 | gblur:1.5+noise:25+jpeg:50 | 2 |" in table
    doc = json.loads(out.read_text())
    a, b = doc["results"]
    assert (a["degradation"], b["degradation"]) == ("noise:15", "gblur:1.5+noise:25+jpeg:50")
    assert b["degradation_params"] == {"blur_sigma": [1.5, 1.5, 0.0], "blur_ksize": 11, "noise_sigma": 25.0,
                                       "jpeg_quality": 50}
    assert b["true_factors"] == {"blur": 1.5, "noise": 25.0, "jpeg": 50.0}
    assert all(r["condition"] == "oracle" and r["do"] == {"jpeg": 90.0} and r["n_images"] == 2 for r in doc["results"])
    cmd = doc["meta"]["command"]
    assert "--condition oracle" in cmd and "--do jpeg=90" in cmd and "noise:25+jpeg:50+gblur:1.5" in cmd
    folders = sorted(p.name for p in (saved / "tiny" / "mini" / "x2").iterdir())
    assert folders == ["gblur-1.5+noise-25+jpeg-50_oracle_do-jpeg=90", "noise-15_oracle_do-jpeg=90"]


def test_lr_of_a_spec_is_the_degraded_hr_with_the_image_seed(images, tmp_path):
    from causalsr.data.degradations import degrade_numpy_uint8

    hr = crop_to_multiple(read_image(next(images.iterdir())).rgb, 2)
    lr = make_lr_cached(hr, 2, "noise:25+gblur:1.5", tmp_path)
    np.testing.assert_array_equal(
        lr, degrade_numpy_uint8(hr, parse_degradation("gblur:1.5+noise:25", 2, image_seed(hr))))
    # the same params under another spelling share the cache entry
    make_lr_cached(hr, 2, "gblur:1.50+noise:25", tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
