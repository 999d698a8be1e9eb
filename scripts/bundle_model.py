#!/usr/bin/env python3
"""Copy a training run's inference export into the package as a bundled model, with its model card.

    python3 scripts/bundle_model.py runs/x4/export/causalsr_x4 --eval outputs/benchmarks/causalsr_x4.json

`--model-set key=value` changes inference-only model options in the bundled
config (e.g. `posterior_crop=24`, which the weights do not depend on); run
`causalsr eval --method causalsr` after bundling and bundle again with its JSON.

Writes causalsr/weights/causalsr_x<s>.safetensors, .json (config + training
metadata + the measured metrics) and .md (the model card). The card's numbers
come only from the export's metadata and the given `causalsr eval` JSON files.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from causalsr.atomic import atomic_path, atomic_write_text
from causalsr.inference.bundled import WEIGHTS_DIR
from causalsr.models.model_file import load_pretrained, with_model_overrides
from causalsr.stems import files_of, stem_of


def card(info: dict, evals: list[dict], note: str) -> str:
    t = info.get("training", {})
    cfg = t.get("config", {})
    data = t.get("data", {})
    m = info["model_config"]
    lines = [
        f"# causalsr x{info['scale']} (bundled)",
        "",
        note or "The best model trained so far with the `cpu-small` preset; not a paper-scale release model.",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | CausalSR, `{m['backbone']}` restorer {m.get('backbone_args', {})}, z_dim {m['z_dim']}, "
        f"semantic encoder `{m['semantic']}` {m.get('semantic_args', {})} (frozen, from its PyPI package) |",
        f"| posterior | spectrum input {m.get('posterior_spectrum', False)}, analysis crop "
        f"{m.get('posterior_crop', 0) or 'default'} (docs/paper-mapping.md deviations 31-33) |",
        f"| preset | `{t.get('preset', '?')}` |",
        f"| training data | {', '.join(data.get('train_roots', []))}, HR patch {data.get('patch_size')}, "
        f"batch {data.get('batch_size')}, on-the-fly degradations (sampler {data.get('sampler', {})}) |",
        f"| steps | {t.get('steps')} ({t.get('skipped_steps', 0)} non-finite steps skipped) |",
        f"| compute | {t.get('wall_time_s', 0) / 60:.1f} min wall on {t.get('machine', {})} |",
        f"| losses | {cfg.get('loss', {}).get('rec_norm')} restoration, all seven terms of Eq. 22 on "
        "(see docs/paper-mapping.md) |",
        f"| validation during training | {t.get('val', {})} |",
    ]
    fits, fit = [], info.get("posterior_fit")
    while fit:  # earliest calibration first
        fits.insert(0, fit)
        fit = fit.get("previous")
    for i, fit in enumerate(fits, 1):
        c = fit["config"]
        paired = (f", blur twins, paired blur term weight {c.get('w_rank', 0.0)} (deviation 35)"
                  if c.get("blur_twins") else "")
        lines.append(f"| posterior calibration {i} of {len(fits)} | `causalsr fit-posterior`, {fit['steps']} steps on "
                     f"{c['lr_patch']}-px LR images from {', '.join(c['train_roots'])}, batch {c['batch_size']}, "
                     f"Adam {c['lr']:g}, sampler {c['sampler']}{paired}"
                     + (f", {fit['wall_time_s'] / 60:.1f} min on {fit['device']}" if "device" in fit else "")
                     + " (deviation 33) |")
    lines += [
        "",
        "## Measured (`causalsr eval`, Y channel, scale-pixel border crop)",
        "",
        "| dataset | degradation | images | PSNR | SSIM | command |",
        "|---|---|---|---|---|---|",
    ]
    for ev in evals:
        cmd = ev.get("meta", {}).get("command", "")
        for r in ev["results"]:
            lines.append(f"| {r['dataset']} | {r['degradation']} | {r['n_images']} | {r['psnr']:.3f} "
                         f"| {r['ssim']:.4f} | `{cmd}` |")
    if evals:
        meta = evals[0].get("meta", {})
        when = f"Measured {meta.get('date', '?')} on {meta.get('machine', '?')}, commit {meta.get('commit', '?')}."
        lines += ["", when]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", help="export stem, e.g. runs/x4/export/causalsr_x4")
    ap.add_argument("--eval", nargs="*", default=[], help="causalsr eval JSON files with this model's results")
    ap.add_argument("--note", default="")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override an inference-only ModelConfig key (repeatable)")
    args = ap.parse_args()
    model, info = load_pretrained(args.export)  # validates the export before it is shipped
    with_model_overrides(model, info, args.model_set)  # the edited config must still hold these weights
    evals = [json.loads(Path(p).read_text()) for p in args.eval]
    info["metrics"] = [{k: r[k] for k in ("dataset", "scale", "degradation", "n_images", "psnr", "ssim")}
                       for ev in evals for r in ev["results"]]
    stem = WEIGHTS_DIR / f"causalsr_x{model.scale}"
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    weights, config = files_of(stem)
    with atomic_path(weights) as tmp:
        shutil.copyfile(files_of(stem_of(args.export))[0], tmp)
    atomic_write_text(config, json.dumps(info, indent=2, sort_keys=True))
    atomic_write_text(stem.with_suffix(".md"), card(info, evals, args.note))
    print(f"bundled {stem}.safetensors / .json / .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
