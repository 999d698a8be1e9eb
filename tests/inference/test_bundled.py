"""The bundled weights: they load offline, upscale to the right size, and hold their measured quality."""
import json

import pytest

import causalsr
from causalsr.data.imageio import read_image
from causalsr.data.imresize import make_lr
from causalsr.evaluation.harness import evaluate
from causalsr.evaluation.methods import Bicubic, CausalSRMethod
from causalsr.inference.bundled import BUNDLED, bundled_stem, model_card
from helpers import SET5


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_model_loads_and_upscales_to_size(name):
    model = causalsr.load(name)
    scale = BUNDLED[name]
    assert model.scale == scale
    lr = make_lr(read_image(SET5 / "bird.png").rgb, scale)
    out = model.upscale(lr)
    assert out.shape == (lr.shape[0] * scale, lr.shape[1] * scale, 3)
    assert model_card(name) and f"x{scale}" in model_card(name)


def test_bundled_x4_reproduces_its_card_on_set5():
    """Set5 x4 PSNR-Y equals the value recorded in the model's JSON (and beats bicubic)."""
    recorded = json.loads(bundled_stem("x4").with_suffix(".json").read_text())["metrics"]
    expected = next(m for m in recorded if m["dataset"] == "Set5" and m["degradation"] == "bicubic")
    ours = evaluate(CausalSRMethod(), [str(SET5)], [4], progress=False)[0].mean("psnr")
    bicubic = evaluate(Bicubic(), [str(SET5)], [4], progress=False)[0].mean("psnr")
    assert ours == pytest.approx(expected["psnr"], abs=0.02)
    assert ours > bicubic + 1.0
