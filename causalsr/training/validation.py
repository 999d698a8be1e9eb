"""Validation during training: PSNR/SSIM-Y on a benchmark (val_log.csv) and the liveness report (liveness_log.csv)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from causalsr.training.config import TrainConfig, resolve_path
from causalsr.training.runlog import CsvLog


@dataclass
class ValImage:
    name: str
    hr: np.ndarray   # uint8 HxWx3, cropped to a multiple of the scale
    lr: torch.Tensor  # 1x3xhxw float
    grey: bool


def load_val_set(name_or_path: str, scale: int, max_images: int, base: Path | None) -> tuple[str, list[ValImage]]:
    """Benchmark images with their standard MATLAB-bicubic LR (as the eval protocol makes them)."""
    from causalsr.data.datasets import resolve_dataset
    from causalsr.data.imageio import read_image, to_uint8
    from causalsr.data.imresize import crop_to_multiple, make_lr

    target = resolve_path(name_or_path, base) if Path(name_or_path).suffix or "/" in name_or_path else name_or_path
    name, files = resolve_dataset(target)
    images = []
    for path in files[:max_images] if max_images > 0 else files:
        img = read_image(path)
        rgb = to_uint8(img.rgb)
        lr = make_lr(rgb, scale)
        images.append(ValImage(path.stem, crop_to_multiple(rgb, scale),
                               torch.from_numpy(lr.astype(np.float32) / 255.0).permute(2, 0, 1)[None], img.grey))
    return name, images


@torch.no_grad()
def validate(model: torch.nn.Module, images: list[ValImage], scale: int, device: torch.device) -> dict[str, float]:
    """Mean PSNR / SSIM on Y with a `scale`-pixel border crop, on uint8-quantised outputs."""
    from causalsr.data.imageio import from_tensor
    from causalsr.metrics.psnr_ssim import psnr, ssim

    was_training = model.training
    model.eval()
    p, s = [], []
    try:
        for im in images:
            sr = from_tensor(model(im.lr.to(device)).clamp(0, 1))
            p.append(psnr(im.hr, sr, crop=scale, grey=im.grey))
            s.append(ssim(im.hr, sr, crop=scale, grey=im.grey))
    finally:
        model.train(was_training)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}


def _say(bar, msg: str) -> None:
    (bar.write if bar is not None else print)(msg)


class Validator:
    """Rank 0's validation for one run: the val set (run.val_dataset), val_log.csv and liveness_log.csv.

    `enabled` is the same on every rank (they all meet at the validation barrier); only rank 0
    (`main`) loads images and keeps logs.
    """

    def __init__(self, cfg: TrainConfig, out_dir: Path, base: Path | None, main: bool, resume_step: int | None):
        run = cfg.run
        self.cfg, self.out_dir = cfg, out_dir
        self.enabled = bool(run.val_dataset)
        self.name: str | None = None
        self.images: list[ValImage] = []
        self.log = CsvLog(out_dir / "val_log.csv", resume_step) if main else None
        if main and self.enabled:
            assert run.val_dataset is not None  # enabled
            self.name, self.images = load_val_set(run.val_dataset, cfg.model.scale, run.val_max_images, base)
        self.probe: tuple[list, list] | None = None
        self.liveness_log: CsvLog | None = None

    def due(self, step: int) -> bool:
        every = self.cfg.run.val_every
        return self.enabled and every > 0 and step % every == 0

    def measure(self, model: torch.nn.Module, step: int, device: torch.device, resumed: bool,
                bar) -> dict[str, Any]:
        """Validate at `step` (rank 0): log the metrics and the liveness report; returns the metrics and "dataset"."""
        assert self.log is not None  # rank 0 keeps the validation log
        scale = self.cfg.model.scale
        t0 = time.monotonic()
        result = {**validate(model, self.images, scale, device), "dataset": self.name}
        self.log.write({"step": step, "dataset": self.name, "psnr_y": result["psnr"],
                        "ssim_y": result["ssim"], "n_images": len(self.images),
                        "seconds": round(time.monotonic() - t0, 2)})
        _say(bar, f"val {self.name} x{scale} step {step}: PSNR-Y {result['psnr']:.3f} dB, "
                  f"SSIM-Y {result['ssim']:.4f}")
        self._log_liveness(model, step, device, resumed, bar)
        return result

    def _log_liveness(self, model: torch.nn.Module, step: int, device: torch.device, resumed: bool, bar) -> None:
        """Training health (issue 13): `causalsr inspect`'s numbers into liveness_log.csv; dead parts said aloud."""
        if self.cfg.model.plain or self.cfg.run.liveness_images <= 0:
            return
        from causalsr.evaluation.liveness import liveness_report, probe_images

        if self.probe is None:
            self.probe = probe_images(self.cfg.model.scale, n=self.cfg.run.liveness_images)
        lrs, hrs = self.probe
        report = liveness_report(model, [x.to(device) for x in lrs], [x.to(device) for x in hrs])
        if self.liveness_log is None:
            self.liveness_log = CsvLog(self.out_dir / "liveness_log.csv", step if resumed else None)
        self.liveness_log.write({"step": step, **{k: v["value"] for k, v in report["parts"].items()
                                                  if v["value"] is not None}})
        if report["failed"]:
            _say(bar, f"liveness step {step}: below threshold: {', '.join(report['failed'])} (liveness_log.csv)")
