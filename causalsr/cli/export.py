"""`causalsr export`: the LR -> SR pipeline as ONNX, or a clean safetensors inference checkpoint."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, cast

from causalsr.cli.common import (
    OK,
    DeprecatedAlias,
    add_model_arguments,
    add_output_argument,
    require_output,
    setup_error,
)
from causalsr.inference.api import load_for_scale

if TYPE_CHECKING:
    from causalsr.models.causalsr import CausalSR


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_output_argument(p, "output file: OUT.onnx, or the checkpoint stem for safetensors", required=False)
    # Older spelling: the output as a positional argument (still accepted, hidden).
    p.add_argument("legacy_output", nargs="?", metavar="OUT", action=DeprecatedAlias, use="-o/--output",
                   help=argparse.SUPPRESS)
    p.add_argument("--format", choices=("onnx", "safetensors"), default="onnx",
                   help="onnx: the whole pipeline with dynamic batch/height/width; by default the graph with "
                        "Z-override inputs (lr, z_override, use_z_override -> sr, z) for --do; "
                        "safetensors: re-export the checkpoint (OUT.safetensors + OUT.json)")
    p.add_argument("--blind", action="store_true",
                   help="onnx only: write the one-input blind graph instead (input [N,3,H,W] -> output), "
                        "for ONNX hosts such as chaiNNer")
    add_model_arguments(p)
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18; default 18)")


def run(args: argparse.Namespace) -> int:
    from functools import partial

    fail = partial(setup_error, "export")
    args.output = args.output or args.legacy_output
    missing = require_output(args, "export")
    if missing is not None:
        return missing
    if args.blind and args.format != "onnx":
        return fail("--blind is an ONNX graph option: use it with --format onnx")
    try:
        up = load_for_scale(args.model, args.scale)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    out = Path(args.output)
    if not out.parent.is_dir():
        return fail(f"output folder {out.parent} does not exist")
    try:
        if args.format == "onnx":
            from causalsr.inference.export import export_onnx

            written = [export_onnx(up.model, out, opset=args.opset, blind=args.blind)]
        else:
            from causalsr.models.model_file import save_pretrained

            meta = {k: v for k, v in up.meta.items() if k not in ("format", "arch", "scale", "model_config")}
            written = list(save_pretrained(cast("CausalSR", up.model), out, meta))
    except ImportError as e:
        return fail(f"{e}; install it with: pip install 'causalsr[export]'")
    except (OSError, ValueError) as e:
        return fail(str(e).splitlines()[0])
    for f in written:
        print(f)
    return OK
