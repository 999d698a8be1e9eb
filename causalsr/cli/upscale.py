"""`causalsr upscale`: super-resolve files, folders and globs, robustly, in bounded memory.

Every bad input is reported on one line and the batch goes on; the exit status
is 1 when anything failed, 2 for setup errors (model, options, output folder).
Outputs are written atomically and never replace an input file; output names
are `causalsr.stems.output_name`'s.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

from causalsr.cli.common import (
    FAILED,
    OK,
    add_device_argument,
    add_model_arguments,
    add_output_argument,
    parse_do,
    resolve_device_arg,
    setup_error,
)
from causalsr.inference.api import PRECISIONS
from causalsr.stems import output_name

__all__ = ["add_arguments", "run", "plan", "expand_inputs", "tile_arg",
           "add_model_arguments", "parse_do"]  # the last two: older import paths (now cli.common)

FORMATS = ("png", "jpg", "webp")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # an -o with one of these names a single output file


def tile_arg(text: str) -> int | str | None:
    """--tile: "auto", a positive int, or 0 for no tiling."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of LR pixels, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"tile must be positive (0 = no tiling), got {value}")
    return value or None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    add_output_argument(p, "output folder (created if needed), or an output file for a single input")
    add_model_arguments(p)
    add_device_argument(p)
    p.add_argument("--tile", type=tile_arg, default="auto", metavar="N|auto",
                   help="LR tile side in pixels; auto sizes tiles from free memory; 0 = never tile (default auto)")
    p.add_argument("--tile-overlap", type=int, default=16, metavar="N", help="tile overlap in LR pixels (default 16)")
    p.add_argument("--tta", action="store_true", help="x8 self-ensemble (flips and rotations; 8x slower)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16 (any device) and fp16 (CUDA, MPS) use autocast where a probe tile shows it is safe, "
                        "else fall back to fp32 with a warning (default fp32)")
    p.add_argument("--do", action="extend", nargs="+", default=[], metavar="FACTOR=VALUE",
                   help="tell the restorer which degradation caused the image, in place of its own estimate: "
                        "a strength control like FFDNet's noise level or FBCNN's quality factor. noise=v below "
                        "the true level keeps grain, above it smooths; a lower jpeg=q deblocks harder; a larger "
                        "blur=s sharpens more. E.g. --do noise=5 jpeg=60 "
                        "(blur sigma 0-4 px, noise sigma 0-50, jpeg quality 10-100)")
    p.add_argument("--format", choices=FORMATS, default="png", help="output format (default png)")
    p.add_argument("--suffix", help="appended to output names (default _x<scale>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder inputs; ** in globs")


@dataclass
class Job:
    """One input file and where its output goes (or why it cannot be processed)."""

    src: Path
    dst: Path | None = None
    error: str | None = None


def expand_inputs(inputs: list[str], recursive: bool) -> list[tuple[Path, Path, str | None]]:
    """(file, relative output folder, error) for every INPUT: files as given, image files of folders, glob matches."""
    from causalsr.data.imageio import is_image_path

    found: list[tuple[Path, Path, str | None]] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            tree = path.rglob("*") if recursive else path.iterdir()
            found += [(f, f.parent.relative_to(path), None) for f in sorted(tree) if f.is_file() and is_image_path(f)]
        elif path.exists():
            found.append((path, Path(), None))
        else:
            matches = sorted(glob.glob(text, recursive=recursive))
            files = [Path(m) for m in matches if Path(m).is_file() and is_image_path(m)]
            if not files:
                found.append((path, Path(), "no such file or folder, and no glob match"))
            found += [(f, Path(), None) for f in files]
    return found


def plan(inputs: list[str], output: Path, recursive: bool, suffix: str, ext: str) -> list[Job]:
    """Decide every output path; an output that is an input, or that two inputs share, becomes an error."""
    expanded = expand_inputs(inputs, recursive)
    single_file = output.suffix.lower() in OUTPUT_SUFFIXES
    sources = {p.resolve() for p, _, err in expanded if err is None}
    jobs: list[Job] = []
    taken: dict[Path, Path] = {}
    for src, rel, err in expanded:
        job = Job(src, error=err)
        if err is None:
            job.dst = output if single_file else output / rel / output_name(src, suffix, ext)
            key = job.dst.resolve()
            if key in sources:
                job.error = f"output {job.dst} would replace an input file; choose another --suffix or -o"
            elif key in taken:
                job.error = f"output {job.dst} is also the output of {taken[key]}; choose another -o"
            taken.setdefault(key, src)
        jobs.append(job)
    return jobs


def _out_folder_error(folder: Path) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create output folder {folder}: {e.strerror or e}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"output folder {folder} is not writable"
    return None


def _setup(args: argparse.Namespace):
    """(upscaler, do, jobs), or an exit status for a setup error (nothing written)."""
    from causalsr.inference.api import load_for_scale

    fail = partial(setup_error, "upscale")
    try:
        do = parse_do(args.do)
    except ValueError as e:
        return fail(str(e))
    if args.tile_overlap < 0 or (isinstance(args.tile, int) and 2 * args.tile_overlap > args.tile):
        return fail(f"--tile-overlap must be between 0 and half the tile size, got {args.tile_overlap}")
    output = Path(args.output)
    device = resolve_device_arg(args, "upscale")
    if isinstance(device, int):
        return device
    try:
        up = load_for_scale(args.model, args.scale, device=device, precision=args.precision)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    if do and up.model.cfg.plain:
        return fail(f"--do: the model {args.model or 'x' + str(up.scale)} "
                    "has no named degradation factors (plain model)")
    jobs = plan(args.inputs, output, args.recursive, args.suffix if args.suffix is not None else f"_x{up.scale}",
                args.format)
    single_file = output.suffix.lower() in OUTPUT_SUFFIXES
    if single_file and len(jobs) > 1:
        return fail(f"-o {output} names a file but there are {len(jobs)} inputs; give a folder")
    folder_error = _out_folder_error(output.parent if single_file else output)
    if folder_error:
        return fail(folder_error)
    return up, do, jobs


def _upscale_one(job: Job, up, args: argparse.Namespace, do: dict[str, float]) -> None:
    """Read, restore and write one job; a failure is left in `job.error`."""
    from causalsr.data.imageio import ImageReadError, LoadedImage, read_image, write_image
    from causalsr.inference.devices import is_oom

    assert job.dst is not None  # planned without error
    try:
        img = read_image(job.src)
        out = cast(LoadedImage, up.upscale(img, tile=args.tile, tile_overlap=args.tile_overlap, tta=args.tta,
                                           do=do))  # a LoadedImage in gives a LoadedImage out
        write_image(job.dst, out.rgb[..., 0] if out.grey else out.rgb, out.alpha, bit_depth=out.bit_depth)
    except ImageReadError as e:
        job.error = str(e)
    except (OSError, ValueError, MemoryError) as e:
        job.error = f"{job.src}: {type(e).__name__}: {' '.join(str(e).split())}"
    except RuntimeError as e:  # out of memory outside the tiles (conditioning a huge image on a GPU)
        if not is_oom(e):
            raise
        job.error = f"{job.src}: out of memory on {up.device}: {' '.join(str(e).split())[:200]}"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    setup = _setup(args)
    if isinstance(setup, int):
        return setup
    up, do, jobs = setup
    written = skipped = failed = 0
    bar = tqdm(jobs, unit="img", disable=None, file=sys.stderr, desc="upscale")
    for job in bar:
        if job.error is None and job.dst is not None and job.dst.exists() and not args.overwrite:
            tqdm.write(f"skip {job.src}: {job.dst} exists (use --overwrite)", file=sys.stderr)
            skipped += 1
            continue
        if job.error is None and job.dst is not None:
            job.error = _out_folder_error(job.dst.parent)
        if job.error is None:
            _upscale_one(job, up, args, do)
            if job.error is None:
                written += 1
                continue
        failed += 1
        msg = job.error if job.error.startswith(str(job.src)) else f"{job.src}: {job.error}"
        tqdm.write(f"causalsr upscale: error: {msg}", file=sys.stderr)
    bar.close()
    print(f"causalsr upscale: {written} written, {skipped} skipped, {failed} failed", file=sys.stderr)
    return FAILED if failed else OK
