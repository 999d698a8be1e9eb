"""The `causalsr` command: subcommands registered explicitly, imported lazily.

Each subcommand lives in `causalsr/cli/<name>.py` with `add_arguments(parser)`
and `run(args) -> int`. Only the chosen subcommand's module is imported, so a
missing optional extra never breaks unrelated commands. Subcommands only parse
arguments and print; the work is done by the package's modules. Exit codes and
shared arguments: `causalsr.cli.common`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from causalsr.cli.common import EXIT_STATUS_HELP, INTERRUPTED, USAGE, setup_error

# name -> (module, one-line help). Explicit: no scanning.
COMMANDS: dict[str, tuple[str, str]] = {
    "upscale": ("causalsr.cli.upscale", "super-resolve images, files, folders or globs"),
    "analyze": ("causalsr.cli.analyze", "estimate the degradation (blur, noise, JPEG) with uncertainty"),
    "effects": ("causalsr.cli.effects", "ATE / CATE of an intervention on outputs and PSNR"),
    "eval": ("causalsr.cli.eval", "benchmark a method on Set5/Set14/BSD100/Urban100/Manga109"),
    "compare": ("causalsr.cli.compare", "compare two images with PSNR/SSIM/LPIPS/DISTS"),
    "train": ("causalsr.cli.train", "train a model from a YAML preset (torchrun for many processes)"),
    "fit-posterior": ("causalsr.cli.fit_posterior", "calibrate a trained model's posterior for whole-image analyze"),
    "profile": ("causalsr.cli.profile", "parameters, FLOPs, memory and runtime, side by side"),
    "export": ("causalsr.cli.export", "export the LR->SR pipeline to ONNX or a checkpoint"),
    "datasets": ("causalsr.cli.datasets", "list the benchmark and training sets found, with image counts"),
    "inspect": ("causalsr.cli.inspect", "liveness report: one number per causal part, with its threshold"),
    "demo": ("causalsr.cli.demo", "a local web page: upload, diagnosis, do() sliders, before/after (extra: demo)"),
}


__all__ = ["COMMANDS", "build_parser", "main", "setup_error"]  # setup_error: older import path (cli.common)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="causalsr", description="CausalSR super-resolution toolkit",
                                     epilog=EXIT_STATUS_HELP)
    parser.add_argument("--version", action="version", version=f"causalsr {__import__('causalsr').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_, epilog=EXIT_STATUS_HELP)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return USAGE
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("causalsr: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
