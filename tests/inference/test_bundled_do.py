"""`--do` acts on the bundled weights, in the stated direction (issue 13).

do(factor = v) tells the restorer which degradation caused the image. On a
degraded photo, telling more noise must smooth more (less high-frequency
energy), telling a lower JPEG quality must deblock harder (fewer visible
8 s-pixel block edges), telling more blur must sharpen more. Before issue 13
every one of these outputs was identical, bit for bit.
"""
import numpy as np
import pytest

import causalsr
from causalsr.data.degradations import degrade_numpy_uint8, parse_degradation
from causalsr.data.imresize import crop_to_multiple
from causalsr.inference.bundled import BUNDLED
from causalsr.metrics.image_stats import blockiness, hf_energy, sharpness
from causalsr.metrics.psnr_ssim import to_measured
from helpers import photo

CASES = {  # degradation, factor, told values (ascending), statistic, +1 if it must rise with v, -1 if fall
    "noise": ("noise:15", "noise", (0.0, 15.0, 30.0), hf_energy, -1),
    "jpeg": ("jpeg:30", "jpeg", (10.0, 30.0, 90.0), None, +1),
    "blur": ("gblur:1.5", "blur", (0.0, 1.5, 3.0), sharpness, +1),
}


def _outputs(name: str, case: str):
    up = causalsr.load(name)
    spec, factor, values, _, _ = CASES[case]
    hr = crop_to_multiple(photo(192, 192, seed=3), up.scale)
    lr = degrade_numpy_uint8(hr, parse_degradation(spec, up.scale, seed=0))
    return up.scale, [up.upscale(lr, do={factor: v}) for v in values]


@pytest.mark.parametrize("name", sorted(BUNDLED))
@pytest.mark.parametrize("case", sorted(CASES))
def test_do_changes_the_output_in_the_stated_direction(name, case):
    scale, outs = _outputs(name, case)
    _, _, _, stat, sign = CASES[case]
    stat = stat or (lambda y: blockiness(y, 8 * scale))
    values = [stat(to_measured(o)) for o in outs]
    assert all(sign * (b - a) > 0 for a, b in zip(values, values[1:])), (case, values)
    change = np.abs(outs[0].astype(np.float64) - outs[-1]).mean()
    assert change > 0.5, f"do({case}) from lowest to highest moved the output by only {change:.3f} grey levels"
