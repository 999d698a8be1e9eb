"""`causalsr effects`: ATE (Eq. 18) and CATE (Eq. 19) of an intervention on a named factor.

The treatment ``--treatment noise=0:15`` compares the restorer's output under
do(noise=0) (arm 1) with do(noise=15) (arm 0); the measurement is
`causalsr.evaluation.intervention_effects`. Units are (image, Z) pairs:
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

from causalsr.cli.common import (
    OK,
    add_data_root_argument,
    add_device_argument,
    apply_data_root,
    resolve_device_arg,
    setup_error,
    write_json,
)
from causalsr.evaluation.intervention_effects import OUTCOMES


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
    add_device_argument(p)
    add_data_root_argument(p)


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from causalsr.data.datasets import resolve_dataset
    from causalsr.data.degradations import preset
    from causalsr.evaluation.intervention_effects import dataset_effects
    from causalsr.inference.api import load_for_scale

    fail = partial(setup_error, "effects")
    apply_data_root(args)
    device = resolve_device_arg(args, "effects")
    if isinstance(device, int):
        return device
    try:
        treatment = parse_treatment(args.treatment)
        for s in args.scales:
            preset(args.degradation, s)
        datasets = [resolve_dataset(d) for d in args.datasets]
        models = {s: load_for_scale(args.model, s if args.model is None else None, device=device)
                  for s in args.scales}
    except (FileNotFoundError, ValueError, KeyError) as e:
        return fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    if args.model is not None and any(m.scale != s for s, m in models.items()):
        return fail(f"{args.model} is an x{next(iter(models.values())).scale} model; "
                    f"--scales must be {next(iter(models.values())).scale}")
    results = []
    for ds_name, files in datasets:
        files = files[:args.max_images] if args.max_images else files
        for s in args.scales:
            try:
                results.append(dataset_effects(models[s], ds_name, files, args.degradation, treatment, args.samples,
                                               args.seed, args.by_semantic_cluster))
            except ValueError as e:
                return fail(str(e))
    name, a, b = treatment
    _print_table(results, f"do({name}={a:g}) vs do({name}={b:g})", args.degradation)
    if args.json:
        doc = {"treatment": {"factor": name, "a": a, "b": b}, "degradation": args.degradation,
               "samples_per_image": args.samples, "ci": "normal 95%", "results": results}
        code = write_json(args.json, doc, "effects")
        if code is not None:
            return code
    return OK


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
