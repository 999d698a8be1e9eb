"""`causalsr upscale`: super-resolve files, folders and globs, robustly, in bounded memory.

Every bad input is reported on one line and the batch goes on; the exit status
is 1 when anything failed, 2 for setup errors (model, options, output folder).
Outputs are written atomically and never replace an input file; output names
are `causalsr.stems.output_name`'s. They carry the input's ICC profile and EXIF
(orientation reset to 1: the input is read upright).

Real-ESRGAN's spellings work too: ``-i/--input``, ``-s/--outscale`` (any factor:
the nearest bundled model's scale, then an exact Lanczos resize), ``-t`` for
``--tile``, ``--ext auto`` (the input's format) and ``--jpeg-quality``.
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
from causalsr.inference.jpeg_evidence import JPEG_EVIDENCE
from causalsr.stems import output_name

__all__ = ["add_arguments", "run", "plan", "expand_inputs", "tile_arg",
           "add_model_arguments", "parse_do"]  # the last two: older import paths (now cli.common)

FORMATS = ("png", "jpg", "webp")
AUTO_EXT = {".png": "png", ".jpg": "jpg", ".jpeg": "jpeg", ".webp": "webp"}  # --ext auto; other inputs give png
MODEL_SCALES = (2, 3, 4)  # the bundled models
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


def outscale_arg(text: str) -> float:
    """-s/--outscale: a factor above 0 and at most 16."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 16:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 16, got {text}")
    return value


def quality_arg(text: str) -> int:
    """--jpeg-quality: an integer 1-100."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 1-100, got {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 1-100, got {value}")
    return value


def model_scale_for(outscale: float) -> int:
    """The bundled model scale nearest to `outscale` (a tie goes to the larger: shrinking loses less)."""
    return min(MODEL_SCALES, key=lambda s: (abs(s - outscale), -s))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-i", "--input", action="append", default=[], metavar="INPUT", dest="input_option",
                   help="an input, as the positional INPUT (Real-ESRGAN's spelling; may be repeated)")
    add_output_argument(p, "output folder (created if needed), or an output file for a single input")
    add_model_arguments(p)
    p.add_argument("-s", "--outscale", type=outscale_arg, metavar="S",
                   help="final scale, any number (e.g. 3.5): runs the nearest model (--scale/--model, else the "
                        "bundled x2/x3/x4 nearest S), then resizes to round(S*W) x round(S*H) with Lanczos")
    add_device_argument(p)
    p.add_argument("-t", "--tile", type=tile_arg, default="auto", metavar="N|auto",
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
    p.add_argument("--jpeg-evidence", choices=JPEG_EVIDENCE, default="container",
                   help="container: for a JPEG file with standard tables, tell the restorer min(its own JPEG "
                        "quality estimate, the quality the file states), unless --do sets jpeg (a file re-saved "
                        "at q has at least q's artefacts; measured in docs/benchmarks.md); none: the pixels "
                        "alone (default container)")
    p.add_argument("--ext", "--format", dest="ext", choices=("auto", *FORMATS), default="png",
                   help="output format; auto keeps the input's (PNG, JPEG, WebP; PNG for other inputs) (default png)")
    p.add_argument("--jpeg-quality", type=quality_arg, default=95, metavar="Q",
                   help="quality of JPEG and WebP outputs, 1-100 (default 95)")
    p.add_argument("--suffix", help="appended to output names (default _x<scale>, or _x<S> with --outscale)")
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
    """Decide every output path; an output that is an input, or that two inputs share, becomes an error.

    `ext` "auto" keeps each input's format (`AUTO_EXT`)."""
    expanded = expand_inputs(inputs, recursive)
    single_file = output.suffix.lower() in OUTPUT_SUFFIXES
    sources = {p.resolve() for p, _, err in expanded if err is None}
    jobs: list[Job] = []
    taken: dict[Path, Path] = {}
    for src, rel, err in expanded:
        job = Job(src, error=err)
        if err is None:
            job_ext = AUTO_EXT.get(src.suffix.lower(), "png") if ext == "auto" else ext
            job.dst = output if single_file else output / rel / output_name(src, suffix, job_ext)
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
    args.inputs = [*args.inputs, *args.input_option]
    if not args.inputs:
        return fail("no input: give INPUT or -i/--input")
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
    scale = args.scale if args.scale or args.model or not args.outscale else model_scale_for(args.outscale)
    try:
        up = load_for_scale(args.model, scale, device=device, precision=args.precision)
    except (FileNotFoundError, ValueError) as e:
        return fail(str(e))
    if do and up.model.cfg.plain:
        return fail(f"--do: the model {args.model or 'x' + str(up.scale)} "
                    "has no named degradation factors (plain model)")
    suffix = f"_x{args.outscale or up.scale:g}" if args.suffix is None else args.suffix
    jobs = plan(args.inputs, output, args.recursive, suffix, args.ext)
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
    from causalsr.inference.images import resize_loaded

    assert job.dst is not None  # planned without error
    try:
        img = read_image(job.src)  # upright: EXIF orientation applied
        out = cast(LoadedImage, up.upscale(img, tile=args.tile, tile_overlap=args.tile_overlap, tta=args.tta,
                                           do=do, jpeg_evidence=args.jpeg_evidence))  # LoadedImage in and out
        if args.outscale is not None:
            size = (round(args.outscale * img.size[0]), round(args.outscale * img.size[1]))
            out = out if out.size == size else resize_loaded(out, (max(size[0], 1), max(size[1], 1)))
        write_image(job.dst, out.rgb[..., 0] if out.grey else out.rgb, out.alpha, bit_depth=out.bit_depth,
                    quality=args.jpeg_quality, icc_profile=out.icc_profile, exif=out.exif)
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
