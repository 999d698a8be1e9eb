"""Real photos, no reference (issue 16): ours and the peers side by side on small, heavily compressed real photos.

    python3 benchmarks/real_photos.py make SKIMAGE_DATA_DIR          # the inputs (benchmarks/real_photos/)
    python3 benchmarks/real_photos.py panel -o docs/images/real_photos_x4.png [--methods ...]

The inputs are four photographs that ship in the scikit-image 0.26.0 wheel (`skimage/data/`; get it with
`pip download --no-deps --only-binary=:all: scikit-image==0.26.0` and unzip it), each cropped, halved with
Pillow's bicubic filter and saved as a quality-30 JPEG by Pillow: what a small, re-compressed web photo
looks like. Their licences, as scikit-image's `skimage/data/_fetchers.py` states them: chelsea (CC0,
Stefan van der Walt), coffee (CC0, Rachel Michetti), astronaut (NASA, public domain), rocket (SpaceX,
public domain). The panel shows one crop of each x4 result per method; there is no reference to score.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "benchmarks" / "real_photos"
# source file, crop box in the source (left, top, right, bottom), crop of the x4 output shown (left, top)
PHOTOS = {
    "chelsea": ("chelsea.png", (0, 0, 451, 300), (250, 140)),
    "coffee": ("coffee.png", (0, 0, 600, 400), (600, 400)),
    "astronaut": ("astronaut.png", (0, 0, 512, 512), (380, 60)),
    "rocket": ("rocket.jpg", (100, 0, 540, 427), (320, 300)),
}
QUALITY = 30
TILE = 224  # shown crop of each x4 output, pixels
METHODS = ("bicubic", "span", "realesrgan", "dat-light", "causalsr")
LABELS = {"input": "input (nearest x4)", "bicubic": "bicubic", "span": "SPAN", "realesrgan": "Real-ESRGAN",
          "dat-light": "DAT-light", "causalsr": "CausalSR (ours)"}


def make(skimage_data: Path, out: Path = FOLDER) -> list[Path]:
    """Write the quality-30 JPEG inputs from scikit-image's sample photos."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (src, box, _) in PHOTOS.items():
        img = Image.open(skimage_data / src).convert("RGB").crop(box)
        small = img.resize((img.width // 2, img.height // 2), Image.Resampling.BICUBIC)
        path = out / f"{name}.jpg"
        small.save(path, quality=QUALITY)
        paths.append(path)
    return paths


def _label(tile: Image.Image, text: str) -> Image.Image:
    if not text:
        return tile
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, 7 * len(text) + 6, 14), fill=(0, 0, 0))
    draw.text((3, 1), text, fill=(255, 255, 255))
    return tile


def outputs(methods: tuple[str, ...], folder: Path = FOLDER) -> dict[str, dict[str, np.ndarray]]:
    """{photo: {method: x4 output}} (the input itself, nearest-upscaled, under "input"); seconds printed."""
    from causalsr.data.imageio import read_image
    from causalsr.evaluation.methods import load_method

    lrs = {name: read_image(folder / f"{name}.jpg").rgb for name in PHOTOS}
    out: dict[str, dict[str, np.ndarray]] = {
        name: {"input": np.asarray(Image.fromarray(lr).resize((lr.shape[1] * 4, lr.shape[0] * 4),
                                                              Image.Resampling.NEAREST))}
        for name, lr in lrs.items()}
    for m in methods:
        method = load_method(m)
        t = time.perf_counter()
        for name, lr in lrs.items():
            out[name][m] = method.upscale(lr, 4)
        print(f"{m}: {time.perf_counter() - t:.1f} s for {len(lrs)} photos", file=sys.stderr)
    return out


def panel(results: dict[str, dict[str, np.ndarray]], columns: list[str]) -> Image.Image:
    """Rows = photos, columns = input and methods, each a TILE x TILE crop of the x4 output, labelled."""
    sheet = Image.new("RGB", (TILE * len(columns), TILE * len(results)), (255, 255, 255))
    for row, (name, by_method) in enumerate(results.items()):
        left, top = PHOTOS[name][2]
        for col, m in enumerate(columns):
            tile = Image.fromarray(by_method[m]).crop((left, top, left + TILE, top + TILE))
            sheet.paste(_label(tile, LABELS[m] if row == 0 else name if col == 0 else ""), (col * TILE, row * TILE))
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the inputs from scikit-image's sample photos")
    mk.add_argument("skimage_data", type=Path, help="the skimage/data folder of the scikit-image 0.26.0 wheel")
    pn = sub.add_parser("panel", help="run the methods and write the side-by-side PNG")
    pn.add_argument("-o", "--output", type=Path, required=True)
    pn.add_argument("--methods", nargs="+", default=list(METHODS))
    args = p.parse_args(argv)
    if args.cmd == "make":
        for path in make(args.skimage_data):
            print(path)
        return 0
    results = outputs(tuple(args.methods))
    panel(results, ["input", *args.methods]).save(args.output, optimize=True)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
