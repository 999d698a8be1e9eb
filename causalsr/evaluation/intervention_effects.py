"""ATE (Eq. 18) and CATE (Eq. 19) of an intervention on a named factor, measured on benchmark images.

Units are (image, Z) pairs: each HR image is degraded with a preset, and
`samples` latents are drawn from its posterior q(Z | Y); both arms restore the
same LR with the same Z (common random numbers), differing only in the
intervened factor and its descendants (the structured prior's do-operator).
Outcomes per unit:

- output: mean absolute pixel change |X_hat(a) - X_hat(b)| on the 0-255 scale;
- psnr: PSNR-Y (dB, border `scale` cropped) PSNR(X, X_hat(a)) - PSNR(X, X_hat(b)).

ATE is the mean over all units with a 95% normal CI; CATE is the same within
k-means clusters of the frozen encoder's pooled features S of each image.
`causalsr effects` is the command line over `dataset_effects`.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from causalsr.causal.effects import kmeans, summarize_effects

OUTCOMES = {"output": "output |dX| (0-255)", "psnr": "PSNR-Y (dB)"}
Treatment = tuple[str, float, float]  # (factor, a, b): do(factor=a) against do(factor=b)


def unit_effects(up, hr_u8: np.ndarray, params, treatment: Treatment, n_samples: int,
                 generator: torch.Generator) -> tuple[list[float], list[float], torch.Tensor]:
    """Per-unit effects (output, PSNR) for one HR image, and its semantic feature S."""
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
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255.0).to(up.device)
        feat = up.model.semantic_features(x)[0].cpu()
    return out, dpsnr, feat


def estimate_dict(e) -> dict:
    """An `EffectEstimate` as JSON-ready values."""
    return {"mean": float(e.mean), "ci95": [float(e.ci_low), float(e.ci_high)], "std_err": float(e.std_err), "n": e.n}


def _skip(msg: str) -> None:
    print(f"causalsr effects: skipped: {msg}", file=sys.stderr)


def _units(up, files: list[Path], degradation: str, treatment: Treatment, samples: int, seed: int,
           on_skip: Callable[[str], None]):
    """(output effects, PSNR effects, features per image, image index per unit) over `files`."""
    from causalsr.data.degradations import preset
    from causalsr.data.imageio import ImageReadError, read_image, to_uint8

    s = up.scale
    generator = torch.Generator().manual_seed(seed)
    out: list[float] = []
    dpsnr: list[float] = []
    feats: list[torch.Tensor] = []
    image_of_unit: list[int] = []
    for i, path in enumerate(files):
        try:
            img = read_image(path)
        except ImageReadError as e:
            on_skip(str(e))
            continue
        hr = to_uint8(img.rgb)
        hr = hr[:hr.shape[0] // s * s, :hr.shape[1] // s * s]
        o, p, f = unit_effects(up, hr, preset(degradation, s, seed=seed + i), treatment, samples, generator)
        out += o
        dpsnr += p
        image_of_unit += [len(feats)] * len(o)
        feats.append(f)
    return out, dpsnr, feats, image_of_unit


def dataset_effects(up, name: str, files: list[Path], degradation: str, treatment: Treatment, samples: int = 2,
                    seed: int = 0, clusters: int = 0, on_skip: Callable[[str], None] = _skip) -> dict:
    """ATE (and, with `clusters`, CATE per semantic cluster) of `treatment` on data set `name` at `up.scale`.

    Unreadable images are passed to `on_skip` and left out; ValueError when fewer than 2 units remain.
    """
    out, dpsnr, feats, image_of_unit = _units(up, files, degradation, treatment, samples, seed, on_skip)
    if len(out) < 2:
        raise ValueError(f"{name} x{up.scale}: need at least 2 (image, Z) units, got {len(out)}")
    effects = {"output": torch.tensor(out, dtype=torch.float64), "psnr": torch.tensor(dpsnr, dtype=torch.float64)}
    entry = {"dataset": name, "scale": up.scale, "n_images": len(feats), "n_units": len(out),
             "ate": {k: estimate_dict(summarize_effects(v)) for k, v in effects.items()}, "cate": []}
    if clusters:
        labels, _ = kmeans(torch.stack(feats), min(clusters, len(feats)), seed=seed)
        unit_labels = labels[torch.tensor(image_of_unit)]
        for c in range(int(labels.max()) + 1):
            sel = unit_labels == c
            if int(sel.sum()) >= 2:
                per_outcome = {o: estimate_dict(summarize_effects(v[sel])) for o, v in effects.items()}
                entry["cate"].append({"cluster": c, "n_images": int((labels == c).sum()), **per_outcome})
    return entry
