"""Liveness report (issue 13): dead trunks fail, live ones pass, d SR / d z matches finite differences,
the prior's movement is measured from its initial values, and missing parts are reported as absent."""
import copy

import pytest
import torch
import torch.nn as nn

from causalsr.evaluation.liveness import LINE15_DRAWS, format_report, liveness_report, probe_images
from causalsr.factors import FACTOR_NAMES
from helpers import tiny_config, tiny_model


def trunk_linears(model) -> list[nn.Linear]:
    cond = model.restorer.conditioning
    return [m for trunk in (cond.cond, cond.ctx) for m in trunk.modules() if isinstance(m, nn.Linear)]


def healthy_model():
    """The tiny model with trunks whose units are all active (positive bias) and read their inputs (unit weights).

    Its random encoder's features are ~1e-9, so SCT's LayerNorm (eps 1e-5) outputs a context of ~1e-6 that
    no trunk can read; a tiny eps brings C to unit scale, as a trained encoder's would be.
    """
    model = tiny_model(2)
    model.sct.norm.eps = 1e-30
    torch.manual_seed(1)
    with torch.no_grad():
        for lin in trunk_linears(model):
            nn.init.normal_(lin.weight, std=1.0)
            nn.init.constant_(lin.bias, 0.5)
    return model


@pytest.fixture(scope="module")
def probes():
    return probe_images(2, n=4, lr_size=16)


@pytest.fixture(scope="module")
def healthy(probes):
    model = healthy_model()
    return model, liveness_report(model, *probes)


def test_probe_images_are_deterministic_and_varied():
    lrs, hrs = probe_images(3, n=3, lr_size=12)
    again, _ = probe_images(3, n=3, lr_size=12)
    assert [tuple(x.shape) for x in lrs] == [(1, 3, 12, 12)] * 3 and tuple(hrs[0].shape) == (1, 3, 36, 36)
    assert all(torch.equal(a, b) for a, b in zip(lrs, again))
    assert all(0 <= float(x.min()) and float(x.max()) <= 1 for x in lrs + hrs)
    assert not torch.equal(hrs[0], hrs[1])


def test_healthy_trunks_pass(healthy):
    _, report = healthy
    for name in ("trunk_cond_live", "trunk_ctx_live"):
        part = report["parts"][name]
        assert part["pass"] is True and part["value"] >= 0.5, (name, part)
        assert name not in report["failed"]
    assert "trunk_cond_live" in format_report(report)


def test_dead_trunk_fails(probes):
    model = healthy_model()
    with torch.no_grad():
        for lin in trunk_linears(model):
            lin.bias.fill_(-100.0)  # every unit's input is far below 0: ReLU (or SiLU) gives a constant
    report = liveness_report(model, *probes)
    for name in ("trunk_cond_live", "trunk_ctx_live"):
        assert report["parts"][name]["value"] == 0.0 and report["parts"][name]["pass"] is False
        assert name in report["failed"]


def test_dout_dz_matches_finite_differences(healthy, probes):
    model, report = healthy
    lrs, _ = probes
    eps = 1e-2
    for k, name in enumerate(FACTOR_NAMES):
        fd = []
        with torch.no_grad():
            for lr in lrs:
                z, tokens, pooled = model.condition(lr)
                step = torch.zeros_like(z)
                step[:, k] = eps
                diff = model.restore(lr, z + step, tokens, pooled) - model.restore(lr, z - step, tokens, pooled)
                fd.append(float((diff / (2 * eps)).abs().mean()))
        part = report["parts"][f"dout_dz_{name}"]
        expected = sum(fd) / len(fd)
        assert expected > 0
        assert part["value"] == pytest.approx(expected, rel=0.02), name
        assert part["grey_levels"] == pytest.approx(255 * part["value"])


def test_prior_edges_moved(healthy, probes):
    model, report = healthy
    fresh = report["parts"]["prior_edges_moved"]
    assert fresh["value"] == 0.0 and fresh["pass"] is False
    moved = copy.deepcopy(model)
    with torch.no_grad():
        moved.prior.edge_logits[0, 0] += 0.5  # component 0 starts at p0 = 0.2
    part = liveness_report(moved, probes[0][:2], probes[1][:2])["parts"]["prior_edges_moved"]
    expected = float(torch.sigmoid(torch.logit(torch.tensor(0.2)) + 0.5)) - 0.2
    assert part["value"] == pytest.approx(expected, rel=1e-4) and part["pass"] is True


def test_report_structure(healthy, probes):
    model, report = healthy
    assert set(report) >= {"parts", "failed", "images"} and report["images"] == len(probes[0])
    gpsi = [n for n in report["parts"] if n.startswith("gpsi_magnitude_")]
    assert len(gpsi) == model.cfg.z_dim and "gpsi_magnitude_noise" in gpsi
    line15 = report["parts"]["line15_fire_rate"]
    assert line15["samples"] == LINE15_DRAWS * len(probes[0]) and 0 <= line15["value"] <= 1
    assert 0 < report["parts"]["h_psi"]["value"] < 1
    for name, part in report["parts"].items():
        assert set(part) >= {"value", "threshold", "pass"}
        assert (name in report["failed"]) == (part["pass"] is False)


def test_absent_parts_are_not_failures(probes):
    from causalsr.models.causalsr import CausalSR

    torch.manual_seed(0)
    model = CausalSR(tiny_config(2, use_int=False, use_cf=False, use_sp=False,
                                 semantic_args={"pretrained": False, "input_size": 64})).eval()
    report = liveness_report(model, probes[0][:2])  # no HR: the bicubic LR stands in for X
    absent = [n for n, p in report["parts"].items() if p["pass"] is None]
    assert {"h_psi", "line15_fire_rate", "prior_edges_moved", "gpsi_magnitude_blur"} <= set(absent)
    assert not set(absent) & set(report["failed"])
    assert all(report["parts"][n]["value"] is None for n in absent)
    assert "absent" in format_report(report)


def _ctx_convs(model) -> list[nn.Conv2d]:
    return [block.cond.ctx for block in model.restorer.blocks]


def test_context_effect_is_the_output_change_under_swapped_context(probes):
    model = healthy_model().eval()
    lr = torch.cat(probes[0])
    with torch.no_grad():
        z, tokens, pooled = model.condition(lr)
        own = model.restore(lr, z, tokens, pooled)
        swapped = model.restore(lr, z, tokens.roll(1, 0), pooled.roll(1, 0))
    expected = float((own - swapped).abs().mean()) * 255.0
    part = liveness_report(model, *probes)["parts"]["context_effect"]
    assert expected > 0.1 and part["value"] == pytest.approx(expected, rel=1e-5) and part["pass"] is True


def test_context_the_restorer_ignores_fails(probes):
    # Context convs and the cond trunk's pooled-C columns at zero: C varies, R ignores it.
    model = healthy_model()
    with torch.no_grad():
        model.restorer.conditioning.cond[0].weight[:, model.cfg.z_dim:] = 0.0
        for conv in _ctx_convs(model):
            conv.weight.zero_()
    report = liveness_report(model, *probes)
    assert report["parts"]["context_effect"]["value"] == 0.0
    assert "context_effect" in report["failed"]


@pytest.mark.slow
@pytest.mark.parametrize("scale", [3, 4])
def test_bundled_model_passes_every_part(scale):
    from causalsr.inference.api import load

    model = load(f"x{scale}").model
    report = liveness_report(model, *probe_images(scale, n=8))
    assert report["failed"] == [], format_report(report)
