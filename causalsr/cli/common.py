"""What the subcommands share: exit codes, one-line errors, and the arguments several of them take.

Exit codes (every subcommand):

- 0 (`OK`): done.
- 1 (`FAILED`): the command ran but something failed: an input image could not be
  processed, a check did not pass (`inspect`, `datasets` without a data folder),
  training stopped with an error, a profiled method could not be measured.
- 2 (`USAGE`): nothing was done because of the command line or its inputs: an
  unknown option or bad value (argparse), a model or config that cannot be
  loaded, an output that cannot be written.
- 130: interrupted (Ctrl+C).

The main output is ``-o/--output`` wherever a command writes one; ``--json PATH``
is the machine-readable record beside it.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

OK, FAILED, USAGE = 0, 1, 2
INTERRUPTED = 130
EXIT_STATUS_HELP = ("exit status: 0 done; 1 ran but something failed (an input, a check, the training run); "
                    "2 nothing done: bad option, model, config or output; 130 interrupted")


def error(command: str, msg: str, code: int = USAGE) -> int:
    """Print ``causalsr COMMAND: error: MSG`` on stderr; returns `code` (default USAGE) for `run` to return."""
    print(f"causalsr {command}: error: {msg}", file=sys.stderr, flush=True)
    return code


def setup_error(command: str, msg: str) -> int:
    """A one-line setup error (model, options, output folder): exit status USAGE (2)."""
    return error(command, msg, USAGE)


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option (or positional): stores its value and says which spelling to use."""

    def __init__(self, option_strings, dest, use: str = "", **kwargs):
        self.use = use
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:  # an optional positional that was not given
            return
        print(f"causalsr: {option_string or 'a positional ' + self.metavar} is deprecated; use {self.use}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_output_argument(p: argparse.ArgumentParser, help: str, required: bool = True, metavar: str = "OUT",
                        old: tuple[str, ...] = ()) -> None:
    """``-o/--output`` (dest ``output``), plus hidden deprecated spellings `old` that still work."""
    # With old spellings argparse cannot require the option itself; `require_output` does, and the help says so.
    p.add_argument("-o", "--output", required=required and not old, metavar=metavar,
                   help=help + (" (required)" if required and old else ""))
    if old:
        p.add_argument(*old, dest="output", action=DeprecatedAlias, use="-o/--output", help=argparse.SUPPRESS)


def require_output(args: argparse.Namespace, command: str) -> int | None:
    """USAGE error when no ``-o/--output`` was given (commands whose old spellings make it optional to argparse)."""
    if getattr(args, "output", None) is None:
        return error(command, "the following arguments are required: -o/--output")
    return None


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--scale and --model, shared by the commands that run one model."""
    p.add_argument("--scale", type=int, choices=(2, 3, 4),
                   help="SR factor: picks the bundled model (default 4) or checks a --model checkpoint")
    p.add_argument("--model", metavar="NAME|PATH", help="bundled model (x2, x3, x4) or checkpoint path")


def device_arg(text: str) -> str:
    """argparse type of ``--device``: the name's form only (auto, cpu, cuda, cuda:N, mps); presence is checked later."""
    from causalsr.inference.devices import check_device_name

    try:
        return check_device_name(text.strip().lower())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_device_argument(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device auto|cpu|cuda[:N]|mps`` (dest ``device``), for the commands that run a model."""
    p.add_argument("--device", type=device_arg, default=default, metavar="auto|cpu|cuda[:N]|mps",
                   help=f"where the model runs; auto = CUDA if available, else MPS, else CPU (default {default})")


def resolve_device_arg(args: argparse.Namespace, command: str) -> torch.device | int:
    """The torch device ``--device`` names (`causalsr.inference.devices.resolve_device`), or a USAGE exit
    status after one line naming the problem, e.g. ``--device cuda: no CUDA device on this machine``."""
    from causalsr.inference.devices import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as e:
        return error(command, f"--device {e}")


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-root DIR`` (overrides $CAUSALSR_DATA) to a subcommand's parser."""
    parser.add_argument("--data-root", metavar="DIR",
                        help="data folder holding benchmarks/ and train/ (default: $CAUSALSR_DATA, "
                             "else ../shared/data; layout in docs/data.md)")


def apply_data_root(args: argparse.Namespace) -> None:
    """Make ``--data-root`` (when given) the data folder for the rest of the process."""
    if getattr(args, "data_root", None):
        from causalsr.data.datasets import set_data_root

        set_data_root(args.data_root)


def parse_do(items: list[str]) -> dict[str, float]:
    """``--do`` values: ["noise=0", "jpeg=100"] -> {"noise": 0.0, "jpeg": 100.0}, validated; one-line ValueError."""
    from causalsr.inference.api import normalise_do

    do: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            if not sep:
                raise ValueError
            v = float(value)
        except ValueError:
            raise ValueError(f"--do expects FACTOR=VALUE (e.g. noise=0), got {item!r}") from None
        if name in do:
            raise ValueError(f"--do: factor {name!r} is given twice ({item!r})")
        try:
            normalise_do({name: v})
        except ValueError as e:
            raise ValueError(f"--do: {e} (in {item!r})") from None
        do[name] = v
    return do


def write_json(path, doc: dict, command: str) -> int | None:
    """Write `doc` as indented JSON, atomically (parent folders created); a USAGE error code if it cannot be."""
    import json
    from pathlib import Path

    from causalsr.atomic import atomic_write_text

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        return error(command, f"cannot write {path}: {e.strerror or e}")
    return None
