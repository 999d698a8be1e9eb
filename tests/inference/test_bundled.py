"""The bundled weights: they load offline, upscale to the right size, and hold their measured quality."""
import json

import pytest

import causalsr
from causalsr.data.imresize import make_lr
from causalsr.evaluation.harness import evaluate
from causalsr.evaluation.methods import Bicubic, CausalSRMethod
from causalsr.inference.bundled import BUNDLED, bundled_dir, model_card
from helpers import dataset_dir, photo, requires_dataset


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_loads_and_upscales_to_size(name):
    model = causalsr.load(name)
    scale = BUNDLED[name]
    assert model.scale == scale
    lr = make_lr(photo(288, 288), scale)
    out = model.upscale(lr)
    assert out.shape == (lr.shape[0] * scale, lr.shape[1] * scale, 3)
    assert model_card(name) and f"x{scale}" in model_card(name)


@pytest.mark.slow
@requires_dataset("Set5")
def test_bundled_x4_reproduces_its_card_on_set5():
    """Set5 x4 PSNR-Y equals the value recorded in the model's JSON (and beats bicubic)."""
    set5 = dataset_dir("Set5")
    recorded = json.loads((bundled_dir("x4") / "config.json").read_text())["metrics"]
    expected = next(m for m in recorded if m["dataset"] == "Set5" and m["degradation"] == "bicubic")
    ours = evaluate(CausalSRMethod(), [str(set5)], [4], progress=False)[0].mean("psnr")
    bicubic = evaluate(Bicubic(), [str(set5)], [4], progress=False)[0].mean("psnr")
    assert ours == pytest.approx(expected["psnr"], abs=0.02)
    assert ours > bicubic + 1.0


@pytest.mark.parametrize("preset_name, factor, target, tolerance", [("noise", "noise", 15.0, 3.0),
                                                                     ("jpeg", "jpeg", 30.0, 10.0)])
@requires_dataset("Set14")
def test_bundled_x4_analyze_reads_the_paper_presets_on_set14(preset_name, factor, target, tolerance):
    """Issue #5's analyze targets, on the shipped weights: mean estimate over Set14 degraded with the preset."""
    from causalsr.data.datasets import resolve_dataset
    from causalsr.data.degradations import degrade_numpy_uint8, preset
    from causalsr.evaluation.harness import load_hr_uint8

    model = causalsr.load("x4")
    _, paths = resolve_dataset("Set14")
    degraded = [degrade_numpy_uint8(load_hr_uint8(p)[0], preset(preset_name, 4, seed=i)) for i, p in enumerate(paths)]
    values = [model.analyze(lr).factors[factor].value for lr in degraded]
    assert len(values) == 14
    assert abs(sum(values) / len(values) - target) <= tolerance, values
