"""`causalsr fit-posterior`: calibrate a trained model's posterior for whole-image `analyze` (deviation 33).

    causalsr fit-posterior runs/x4/export/causalsr_x4 -o runs/x4/export/causalsr_x4_fit \\
        --config configs/posterior-fit.yaml [--set steps=500 ...] [--model-set posterior_crop=24]

Only the posterior's weights change; the output is a new checkpoint (the input
is never overwritten) whose metadata records the calibration config and losses.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from causalsr.cli.common import FAILED, OK, add_output_argument, error, require_output, setup_error
from causalsr.stems import stem_of

if TYPE_CHECKING:
    from causalsr.models.causalsr import CausalSR
    from causalsr.training.posterior_fit import PosteriorFitConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="bundled name (x2, x3, x4) or checkpoint path")
    add_output_argument(parser, "output checkpoint stem (writes .safetensors and .json)", old=("--out",))
    parser.add_argument("--config", help="calibration preset, e.g. configs/posterior-fit.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a calibration value, e.g. --set steps=500 (repeatable)")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an inference-only model option first, e.g. posterior_crop=24")


def run(args: argparse.Namespace) -> int:
    from causalsr.inference import bundled
    from causalsr.models.model_file import load_pretrained, save_pretrained, with_model_overrides
    from causalsr.training.config import repo_root_of, resolve_path
    from causalsr.training.posterior_fit import (
        PosteriorFitConfig,
        PosteriorFitError,
        check_config,
        fit_posterior,
        resolve_device,
    )
    from causalsr.training.runlog import device_name
    from causalsr.yaml_config import ConfigError, load_config, to_dict

    missing = require_output(args, "fit-posterior")
    if missing is not None:
        return missing
    try:
        cfg = load_config(PosteriorFitConfig, args.config, args.set)
        stem = bundled.resolve(args.model)
        model, info = load_pretrained(stem)
        model = with_model_overrides(model, info, args.model_set)
        check_config(cfg, model)
        device = resolve_device(cfg.device)  # for the record; fit_posterior resolves it the same way
    except (ConfigError, FileNotFoundError, TypeError, ValueError, KeyError, RuntimeError, PosteriorFitError) as e:
        return setup_error("fit-posterior", str(e))
    out = Path(args.output)
    out_stem = stem_of(out)
    if out_stem.resolve() == stem.resolve():
        return setup_error("fit-posterior", f"{out}: output would overwrite the input model; choose another -o")
    # Relative data paths fall back to the preset's repository, as in `causalsr train`.
    base = repo_root_of(args.config) if args.config else None
    roots = [str(resolve_path(r, base)) for r in cfg.train_roots]
    try:
        started = time.monotonic()
        losses = fit_posterior(model, dataclasses.replace(cfg, train_roots=roots))
    except (PosteriorFitError, ValueError) as e:  # the run itself failed (e.g. diverged)
        return error("fit-posterior", str(e), FAILED)
    meta = {k: v for k, v in info.items() if k not in ("format", "arch", "scale", "model_config", "metrics")}
    calibrate_report(model, roots, cfg)
    meta["posterior_fit"] = {"from": args.model, "config": to_dict(cfg),
                             "first_loss": losses[0] if losses else None,
                             "last_loss": losses[-1] if losses else None, "steps": len(losses),
                             "sd_scale": model.cfg.posterior_sd_scale,
                             "mean_knots": model.cfg.posterior_mean_knots, "device": device_name(device),
                             "wall_time_s": round(time.monotonic() - started, 1)}
    if "posterior_fit" in info:  # a calibration of a calibrated model keeps the earlier record
        meta["posterior_fit"]["previous"] = info["posterior_fit"]
    weights, config = save_pretrained(model, out_stem, meta)
    trace = f", loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else ""
    print(f"wrote {weights} and {config} ({len(losses)} steps{trace})")
    return OK


def calibrate_report(model: CausalSR, roots: list[str], cfg: PosteriorFitConfig) -> None:
    """After the fit: `analyze`'s reading correction (deviation 44), then its +- on the corrected readings (40)."""
    from causalsr.factors import FACTORS
    from causalsr.training.interval_calibration import fit_interval_scale
    from causalsr.training.mean_calibration import fit_mean_knots

    if cfg.mean_levels:
        knots = fit_mean_knots(model, roots, cfg.mean_levels, cfg.mean_image_step)
        for name, (reads, levels) in knots.items():
            print(f"analyze's {name} corrected: " + ", ".join(f"{r:.2f} -> {v:g}" for r, v in zip(reads, levels)))
    if cfg.interval_draws:
        scale = fit_interval_scale(model, roots, cfg.sampler, cfg.interval_draws, cfg.seed)
        print("analyze's +- scaled by " + ", ".join(f"{f.name} {v:.3f}" for f, v in zip(FACTORS, scale)))
