"""`causalsr analyze`: which degradation the model sees (blur, noise, JPEG), with uncertainty from Sigma.

`--explain DIR` also writes a labelled PNG panel per image: the input
(bicubic-upscaled), the restoration, the restorations under do(noise=0),
do(blur=0) and do(jpeg=100) (the restorer told there was no such
degradation), restorations with Z sampled from the posterior, and
counterfactual LR images: the degradation mechanism f_y applied to the
restoration under do(jpeg=10) and do(noise=30), i.e. "this photo as if it
had been compressed at quality 10 / had noise 30". Large images are shown as
a centre crop, conditioned on the whole image. Under the cells, one reliability
strip per factor (`causalsr.cli.reliability`): the estimate and its 90% interval
on the factor's axis, beside how that factor's interval covered the truth on a
benchmark, from the `benchmarks/analyze_accuracy.py --grid` JSON given as
`--reliability JSON` (without one the strips say that no record was given).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from causalsr.cli.common import (
    FAILED,
    OK,
    add_device_argument,
    add_model_arguments,
    resolve_device_arg,
    setup_error,
    write_json,
)
from causalsr.cli.reliability import Reliability, reliability_from_grid, reliability_strips, with_strips
from causalsr.data.imageio import to_uint8
from causalsr.stems import output_name

PANEL_CROP = 128  # LR pixels: keeps a panel cell at most 512 px wide at x4
INTERVENTIONS = ({"noise": 0.0}, {"blur": 0.0}, {"jpeg": 100.0})
COUNTERFACTUALS = ({"jpeg": 10.0}, {"noise": 30.0})
LABEL_HEIGHT = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to analyze")
    p.add_argument("--json", metavar="PATH", help="also write the estimates (and covariances) as JSON")
    p.add_argument("--explain", metavar="DIR", help="write a labelled PNG panel per image into DIR")
    p.add_argument("--samples", type=int, default=3, help="counterfactual samples in the panel (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed for the counterfactual samples")
    p.add_argument("--reliability", metavar="JSON",
                   help="with --explain: the benchmark record the panel's reliability strips show, a "
                        "benchmarks/analyze_accuracy.py --grid JSON of this model (for the bundled x4: "
                        "benchmarks/results/analyze_accuracy_x4.json)")
    add_model_arguments(p)
    add_device_argument(p)


def counterfactual_lr(up, restoration: np.ndarray, cond, do: dict, seed: int = 0) -> np.ndarray:
    """A draw of Y = f_y(X_hat, do(Z)) + eps_y (Eq. 2) as uint8 RGB: `restoration` degraded as `do` says.

    The mechanism's mean carries blur, downsampling and JPEG; noise enters as eps_y's variance, so
    the draw (seeded) is what shows it.
    """
    import torch

    z = up.intervene(cond, do).z
    x = torch.from_numpy(to_uint8(restoration).astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(up.device)
    with torch.no_grad():
        mean = up.model.mechanism(x, z)
        eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed)).to(mean.device)
        y = (mean + up.model.mechanism.noise_var(z).sqrt().view(-1, 1, 1, 1) * eps).clamp(0, 1)
    return (y[0].permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def explain_panel(up, img, n_samples: int = 3, seed: int = 0, reliability: Reliability | None = None):
    """A labelled PIL panel for a LoadedImage `img`, with the reliability strips of `up.analyze(img)`
    and `reliability`'s benchmark record (see the module docstring)."""
    import torch
    from PIL import Image, ImageDraw

    from causalsr.data.imageio import LoadedImage

    h, w = img.rgb.shape[:2]
    ch, cw = min(h, PANEL_CROP), min(w, PANEL_CROP)
    y, x = (h - ch) // 2, (w - cw) // 2
    crop = LoadedImage(img.rgb[y:y + ch, x:x + cw], None, img.bit_depth, img.grey, img.path)
    s = up.scale
    cond = up.condition(img)
    bicubic = Image.fromarray(to_uint8(crop.rgb)).resize((cw * s, ch * s), Image.Resampling.BICUBIC)
    cells = [("input (bicubic)", np.asarray(bicubic)),
             ("restoration", up.upscale(crop, conditioning=cond).rgb)]
    for do in INTERVENTIONS:
        (name, value), = do.items()
        cells.append((f"do({name}={value:g})", up.upscale(crop, conditioning=cond, do=do).rgb))
    generator = torch.Generator().manual_seed(seed)
    for i in range(n_samples):
        sample = up.condition(img, generator=generator)
        cells.append((f"Z sample {i + 1}", up.upscale(crop, conditioning=sample).rgb))
    for do in COUNTERFACTUALS:
        (name, value), = do.items()
        lr = counterfactual_lr(up, cells[1][1], cond, do, seed)
        shown = Image.fromarray(lr).resize((cw * s, ch * s), Image.Resampling.NEAREST)
        cells.append((f"LR as if {name}={value:g} (f_y)", np.asarray(shown)))
    cols = 4
    rows = -(-len(cells) // cols)
    cell_w, cell_h = cw * s, ch * s + LABEL_HEIGHT
    panel = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(panel)
    for i, (label, rgb) in enumerate(cells):
        left, top = (i % cols) * cell_w, (i // cols) * cell_h
        panel.paste(Image.fromarray(to_uint8(rgb)), (left, top + LABEL_HEIGHT))
        draw.text((left + 3, top + 2), label, fill="black")
    return with_strips(panel, reliability_strips(up.analyze(img), reliability, panel.width))


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from causalsr.atomic import atomic_path
    from causalsr.data.imageio import ImageReadError, read_image
    from causalsr.inference.api import load_for_scale

    fail = partial(setup_error, "analyze")
    device = resolve_device_arg(args, "analyze")
    if isinstance(device, int):
        return device
    try:
        up = load_for_scale(args.model, args.scale, device=device)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    explain = Path(args.explain) if args.explain else None
    reliability = None
    if args.reliability:
        if explain is None:
            return fail("--reliability is drawn in the --explain panels: give --explain DIR too")
        try:
            reliability = reliability_from_grid(json.loads(Path(args.reliability).read_text()), up.scale)
        except (OSError, ValueError) as e:
            return fail(f"--reliability {args.reliability}: {e}")
    if explain is not None:
        try:
            explain.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return fail(f"cannot create --explain folder {explain}: {e.strerror or e}")
    results, failed = [], 0
    for name in args.images:
        try:
            img = read_image(name)
            report = up.analyze(img)
            print(name)
            for line in str(report).splitlines():
                print(f"  {line}")
            results.append({"path": str(name), **report.to_dict()})
            if explain is not None:
                with atomic_path(explain / output_name(name, "_explain")) as tmp:
                    explain_panel(up, img, args.samples, args.seed, reliability).save(tmp, format="PNG")
        except ImageReadError as e:
            print(f"causalsr analyze: error: {e}", file=sys.stderr)
            failed += 1
        except (OSError, ValueError, MemoryError) as e:
            print(f"causalsr analyze: error: {name}: {' '.join(str(e).split())}", file=sys.stderr)
            failed += 1
    if args.json:
        code = write_json(args.json, {"model_scale": up.scale, "images": results}, "analyze")
        if code is not None:
            return code
    return FAILED if failed else OK
