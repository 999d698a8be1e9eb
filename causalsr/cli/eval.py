"""`causalsr eval`: benchmark a method on standard datasets with the published protocol.

Prints a Markdown table (stdout), a progress bar (stderr, on a terminal) and,
with --json, writes results plus run metadata atomically. Bad images are
skipped, listed at the end, and make the exit status 1.

Degradations are presets or parameterised specs (``--degradation bicubic
noise:15 gblur:1.5+noise:10+jpeg:50``), each evaluated in turn. Our models
restore blind by default; ``--condition oracle`` tells them the true named
factors of the degradation, and ``--do noise=0`` restores under do(noise=0)
(the model's do-operator). Every result records its degradation (name and
parameters), condition and do values.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from causalsr.cli.common import (
    FAILED,
    OK,
    USAGE,
    add_data_root_argument,
    add_device_argument,
    apply_data_root,
    error,
    parse_do,
    resolve_device_arg,
    write_json,
)
from causalsr.evaluation.harness import CONDITIONS, METRICS
from causalsr.metrics.psnr_ssim import GREY_CONVENTIONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True,
                   help="bicubic, dat-light, span, causalsr (bundled models), or a checkpoint path")
    p.add_argument("--datasets", nargs="+", required=True, metavar="D",
                   help="benchmark names (Set5 Set14 BSD100 Urban100 Manga109) or folders of HR images")
    p.add_argument("--scales", nargs="+", type=int, required=True, metavar="S", help="upscaling factors, e.g. 2 3 4")
    p.add_argument("--degradation", nargs="+", action="extend", metavar="SPEC",
                   help="one or more degradations, each evaluated: a preset (bicubic, blur, noise, jpeg or a '+' "
                        "combination: the paper's 3x3 sigma-2 blur, noise 15, JPEG 30) or a spec of '+'-joined parts "
                        "gblur:S (full-kernel Gaussian blur, 0 < S <= 4 HR px), noise:N (0-50, 0-255 scale), "
                        "jpeg:Q (10-100), or clean; e.g. noise:25+jpeg:50+gblur:1.5 (default: bicubic)")
    p.add_argument("--condition", choices=CONDITIONS, default="blind",
                   help="causalsr models: 'blind' (default) takes Z from the posterior q(Z|Y); 'oracle' replaces its "
                        "named factors (blur, noise, jpeg) with the degradation's true values (needs known factors: "
                        "not the 3x3 'blur' preset)")
    p.add_argument("--do", action="extend", nargs="+", default=[], metavar="FACTOR=VALUE",
                   help="causalsr models: restore under do(FACTOR=VALUE) through the model's do-operator, e.g. "
                        "--do noise=0 jpeg=100 (blur sigma 0-4 px, noise sigma 0-50, jpeg quality 10-100)")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim"], choices=METRICS, metavar="M",
                   help=f"any of {', '.join(METRICS)} (default: psnr ssim); LPIPS is v0.1 AlexNet")
    p.add_argument("--grey-convention", choices=GREY_CONVENTIONS, default="basicsr",
                   help="greyscale HR images: 'matlab' measures grey values, 'basicsr' (default) 3 channels -> Y")
    p.add_argument("--json", type=Path, metavar="PATH", help="write results and metadata as JSON")
    p.add_argument("--save-images", type=Path, metavar="DIR", help="save SR outputs as DIR/method/dataset/xS/name.png")
    add_device_argument(p)
    add_data_root_argument(p)


def _command(args: argparse.Namespace) -> str:
    parts = ["causalsr", "eval", "--method", args.method, "--datasets", *args.datasets,
             "--scales", *map(str, args.scales), "--degradation", *args.degradation,
             "--condition", args.condition, *(["--do", *args.do] if args.do else []),
             "--metrics", *args.metrics, "--grey-convention", args.grey_convention]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    apply_data_root(args)
    from causalsr.evaluation.harness import check_degradations, evaluate, markdown_table, run_meta
    from causalsr.evaluation.methods import load_method

    args.degradation = args.degradation or ["bicubic"]
    device = resolve_device_arg(args, "eval")
    if isinstance(device, int):
        return device
    try:
        check_degradations(args.degradation)  # option errors before loading anything
        do = parse_do(args.do)
        method = load_method(args.method, device=device)
        results = evaluate(method, args.datasets, args.scales, args.degradation, tuple(args.metrics),
                           args.grey_convention, args.save_images, do=do, condition=args.condition,
                           metrics_device=str(device))
    except (KeyError, ImportError, ValueError, FileNotFoundError) as e:
        return error("eval", str(e.args[0] if isinstance(e, KeyError) else e), USAGE)
    print(f"Y-channel PSNR/SSIM, border crop = scale, grey convention: {args.grey_convention}"
          + ("; LPIPS v0.1 AlexNet on RGB in [-1, 1]" if "lpips" in args.metrics else ""))
    print(markdown_table(results))
    failures = [f for r in results for f in r.failures]
    if args.json:
        meta = run_meta(_command(args), args.grey_convention)
        meta["failures"] = failures
        meta["device"] = str(device)
        code = write_json(args.json, {"results": [r.to_dict() for r in results], "meta": meta}, "eval")
        if code is not None:
            return code
    if failures:
        print(f"causalsr eval: {len(failures)} image(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return FAILED
    return OK
