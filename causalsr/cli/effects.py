"""`causalsr effects`: ATE (Eq. 18) and CATE (Eq. 19) of an intervention on a named factor.

The treatment ``--treatment noise=0:15`` compares the restorer's output under
do(noise=0) (arm 1) with do(noise=15) (arm 0). Units are (image, Z) pairs:
each benchmark image is degraded with ``--degradation``, and ``--samples``
latents are drawn from its posterior q(Z | Y); both arms restore the same LR
with the same Z (common random numbers), differing only in the intervened
factor and its descendants (the structured prior's do-operator). Outcomes:

- output: mean absolute pixel change |X_hat(a) - X_hat(b)| on the 0-255 scale;
- PSNR-Y (dB, border `scale` cropped): PSNR(X, X_hat(a)) - PSNR(X, X_hat(b)).

ATE is the mean over all units with a 95% normal CI; CATE (Eq. 19) is the
same within semantic groups: k-means (``--by-semantic-cluster K``) over the
frozen encoder's pooled features S of each image.
"""
from __future__ import annotations

import argparse
import json
import sys

from causalsr.cli.datasets import add_data_root_argument, apply_data_root

OUTCOMES = {"output": "output |dX| (0-255)", "psnr": "PSNR-Y (dB)"}


def parse_treatment(text: str) -> tuple[str, float, float]:
    """"noise=0:15" -> ("noise", 0.0, 15.0), validated against the factor's range."""
    from causalsr.inference.api import normalise_do

    name, sep, values = text.partition("=")
    a, colon, b = values.partition(":")
    try:
        if not (sep and colon):
            raise ValueError
        treatment = (name.strip(), float(a), float(b))
    except ValueError:
        raise ValueError(f"--treatment expects factor=a:b (e.g. noise=0:15), got {text!r}") from None
    normalise_do({treatment[0]: treatment[1]})
    normalise_do({treatment[0]: treatment[2]})
    return treatment


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", nargs="+", required=True, metavar="D",
                   help="benchmark names (Set5, ...) or HR folders")
    p.add_argument("--scales", nargs="+", type=int, default=[4], choices=(2, 3, 4), metavar="S", help="SR factors")
    p.add_argument("--treatment", required=True, metavar="FACTOR=A:B",
                   help="compare do(FACTOR=A) with do(FACTOR=B), physical units, e.g. noise=0:15")
    p.add_argument("--degradation", default="blur+noise+jpeg",
                   help="degradation preset applied to the HR images (default blur+noise+jpeg)")
    p.add_argument("--by-semantic-cluster", type=int, default=0, metavar="K",
                   help="also report CATE within K k-means clusters of the semantic features")
    p.add_argument("--samples", type=int, default=2, help="posterior samples of Z per image (default 2)")
    p.add_argument("--max-images", type=int, metavar="N", help="use only the first N images of each dataset")
    p.add_argument("--model", metavar="PATH", help="checkpoint (its scale only); default: the bundled x<S> models")
    p.add_argument("--seed", type=int, default=0, help="seed for the degradations and Z samples")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    add_data_root_argument(p)


def _unit_effects(up, hr_u8, params, treatment, n_samples, generator):
    """Per-unit effects (output, PSNR) for one HR image, and its semantic feature S."""
    import numpy as np
    import torch

    from causalsr.data.degradations import degrade
    from causalsr.metrics.psnr_ssim import psnr

    s = up.scale
    hr = torch.from_numpy(hr_u8).permute(2, 0, 1).float().div(255.0)
    lr = (degrade(hr, params) * 255.0).round().byte().permute(1, 2, 0).numpy()
    name, a, b = treatment
    out, dpsnr = [], []
    for _ in range(n_samples):
        cond = up.condition(lr, generator=generator)
        sr_a = up.upscale(lr, conditioning=cond, do={name: a})
        sr_b = up.upscale(lr, conditioning=cond, do={name: b})
        out.append(float(np.abs(sr_a.astype(np.float64) - sr_b).mean()))
        dpsnr.append(psnr(hr_u8, sr_a, crop=s) - psnr(hr_u8, sr_b, crop=s))
    with torch.no_grad():
        feat = up.model.semantic_features(torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255.0))[0]
    return out, dpsnr, feat


def _estimate_dict(e) -> dict:
    return {"mean": float(e.mean), "ci95": [float(e.ci_low), float(e.ci_high)], "std_err": float(e.std_err), "n": e.n}


def run(args: argparse.Namespace) -> int:
    from functools import partial

    import torch

    from causalsr.atomic import atomic_write_text
    from causalsr.causal.effects import kmeans, summarize_effects
    from causalsr.cli.main import setup_error
    from causalsr.data.datasets import resolve_dataset
    from causalsr.data.degradations import preset
    from causalsr.data.imageio import ImageReadError, read_image, to_uint8
    from causalsr.inference.api import load_for_scale

    fail = partial(setup_error, "effects")
    apply_data_root(args)
    try:
        treatment = parse_treatment(args.treatment)
        for s in args.scales:
            preset(args.degradation, s)
        datasets = [resolve_dataset(d) for d in args.datasets]
        models = {s: load_for_scale(args.model, s if args.model is None else None) for s in args.scales}
    except (FileNotFoundError, ValueError, KeyError) as e:
        return fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    if args.model is not None and any(m.scale != s for s, m in models.items()):
        return fail(f"{args.model} is an x{next(iter(models.values())).scale} model; "
                    f"--scales must be {next(iter(models.values())).scale}")
    name, a, b = treatment
    results = []
    for ds_name, files in datasets:
        files = files[:args.max_images] if args.max_images else files
        for s in args.scales:
            up = models[s]
            generator = torch.Generator().manual_seed(args.seed)
            out: list[float] = []
            dpsnr: list[float] = []
            feats: list[torch.Tensor] = []
            image_of_unit: list[int] = []
            for i, path in enumerate(files):
                try:
                    img = read_image(path)
                except ImageReadError as e:
                    print(f"causalsr effects: skipped: {e}", file=sys.stderr)
                    continue
                hr = to_uint8(img.rgb)
                hr = hr[:hr.shape[0] // s * s, :hr.shape[1] // s * s]
                o, p, f = _unit_effects(up, hr, preset(args.degradation, s, seed=args.seed + i), treatment,
                                        args.samples, generator)
                out += o
                dpsnr += p
                image_of_unit += [len(feats)] * len(o)
                feats.append(f)
            if len(out) < 2:
                return fail(f"{ds_name} x{s}: need at least 2 (image, Z) units, got {len(out)}")
            effects = {"output": torch.tensor(out, dtype=torch.float64),
                       "psnr": torch.tensor(dpsnr, dtype=torch.float64)}
            entry = {"dataset": ds_name, "scale": s, "n_images": len(feats), "n_units": len(out),
                     "ate": {k: _estimate_dict(summarize_effects(v)) for k, v in effects.items()}, "cate": []}
            k = args.by_semantic_cluster
            if k:
                labels, _ = kmeans(torch.stack(feats), min(k, len(feats)), seed=args.seed)
                unit_labels = labels[torch.tensor(image_of_unit)]
                for c in range(int(labels.max()) + 1):
                    sel = unit_labels == c
                    if int(sel.sum()) >= 2:
                        per_outcome = {o: _estimate_dict(summarize_effects(v[sel])) for o, v in effects.items()}
                        entry["cate"].append({"cluster": c, "n_images": int((labels == c).sum()), **per_outcome})
            results.append(entry)
    _print_table(results, f"do({name}={a:g}) vs do({name}={b:g})", args.degradation)
    if args.json:
        doc = {"treatment": {"factor": name, "a": a, "b": b}, "degradation": args.degradation,
               "samples_per_image": args.samples, "ci": "normal 95%", "results": results}
        try:
            atomic_write_text(args.json, json.dumps(doc, indent=2))
        except OSError as e:
            return fail(f"cannot write {args.json}: {e.strerror or e}")
    return 0


def _print_table(results: list[dict], treatment: str, degradation: str) -> None:
    print(f"Effect of {treatment} on {degradation}-degraded inputs (ATE Eq. 18, CATE Eq. 19; 95% CI)")
    print(f"{'dataset':<10} {'scale':<5} {'group':<12} {'outcome':<20} {'effect':>8}  {'95% CI':<19} {'n':>4}")

    def rows(ds, s, group, est):
        for key, label in OUTCOMES.items():
            e = est[key]
            ci = f"[{e['ci95'][0]:+.3f}, {e['ci95'][1]:+.3f}]"
            print(f"{ds:<10} {'x' + str(s):<5} {group:<12} {label:<20} {e['mean']:>+8.3f}  {ci:<19} {e['n']:>4}")

    for r in results:
        rows(r["dataset"], r["scale"], "all (ATE)", r["ate"])
        for c in r["cate"]:
            rows(r["dataset"], r["scale"], f"cluster {c['cluster']}", c)
