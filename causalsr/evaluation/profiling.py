"""Table V, measured on this machine: the engine of `causalsr profile`.

One row per method and scale (x2, x3, x4 where the method has that scale), each
measured in a fresh subprocess (so peak-memory figures do not mix):

- parameters (counted from the method's torch modules; the ncnn peers, SPAN and
  Real-ESRGAN, from the Convolution layers of their deployed .param graphs);
- multiply-accumulates for one `--size` output, from
  `torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2: SR papers'
  "FLOPs" are MACs); the ncnn peers' are counted from their graphs (`ncnn_counts`,
  labelled [C]; for SPAN they equal the architecture formula of
  REFERENCE_NUMBERS.md section 3, `span_deploy_counts`);
- peak memory at inference: the rise of the process's peak RSS (VmHWM) over
  its RSS just before one inference;
- peak memory at training (CausalSR only): the same for one forward and
  backward pass of the inference path (posterior, context, restorer) on a
  batch of 16 LR patches of 192x192 HR;
- median runtime of an LR input whose output is `--size`;
- output megapixels per second: median over `--images` (HR benchmark images,
  MATLAB-bicubic downscaled), fp32, `--threads` CPU threads (default all cores).

``device`` in the spec (`causalsr profile --device`, default cpu) is where
CausalSR runs; the peers keep their own runtimes (CPU). The memory figures are
host RSS, so on a GPU they do not count GPU memory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

DEFAULT_METHODS = ("causalsr", "dat-light", "span", "realesrgan", "bicubic")
RUNTIME_SCALES = (2, 3, 4)
NCNN_PEERS = ("span", "realesrgan")  # counted from their .param graphs
INFERENCE_PARTS = ("posterior", "prior", "semantic", "sct", "restorer")  # what CausalSR runs at inference
SPAN_CHANNELS = 48  # the released spanx{2,4}_ch48 models that the `span` method runs


def span_deploy_counts(scale: int, lr_pixels: int, c: int = SPAN_CHANNELS) -> tuple[int, int]:
    """(parameters, MACs) of re-parameterised SPAN [C]: 3x3 conv 3->c, 19 3x3 c->c, 1x1 4c->c, 3x3 c->3s^2."""
    weights = 27 * c + 19 * 9 * c * c + 4 * c * c + 9 * c * 3 * scale * scale
    biases = c + 19 * c + c + 3 * scale * scale
    return weights + biases, weights * lr_pixels


def ncnn_counts(param_file, lr_pixels: int) -> tuple[int, int]:
    """(parameters, MACs) of an ncnn graph [C]: its Convolution layers, each at its blob's size.

    A blob's size relative to the input follows the graph: Interp multiplies it by its scales,
    PixelShuffle by its factor squared, a strided convolution divides it by the stride squared;
    every other layer keeps its first input's.
    """
    from pathlib import Path

    area: dict[str, float] = {}
    params = macs = 0
    for line in Path(param_file).read_text().split("\n")[2:]:
        t = line.split()
        if not t:
            continue
        kind, n_in, n_out = t[0], int(t[2]), int(t[3])
        ins, outs = t[4:4 + n_in], t[4 + n_in:4 + n_in + n_out]
        p = dict(kv.split("=", 1) for kv in t[4 + n_in + n_out:])
        a = area.get(ins[0], 1.0) if ins else 1.0
        if kind == "Convolution":
            a /= int(p.get("3", 1)) ** 2
            weights = int(p["6"])
            params += weights + (int(p["0"]) if p.get("5") == "1" else 0)
            macs += round(weights * a * lr_pixels)
        elif kind == "Interp":
            a *= float(p.get("1", 1)) * float(p.get("2", 1))
        elif kind == "PixelShuffle":
            a *= int(p.get("0", 1)) ** 2
        area.update(dict.fromkeys(outs, a))
    return params, macs


def _ncnn_param_file(method, scale: int):
    """The .param file an ncnn peer (`peers.NcnnPeer`) runs at `scale`."""
    return (method._dir / method.stems[scale]).with_suffix(".param")


# ------------------------------------------------------------- worker side
def _rss_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_rise_mb(fn) -> float:
    """MB by which `fn()` raises this process's peak RSS above its current RSS."""
    before = _rss_kb("VmRSS")
    fn()
    return max(_rss_kb("VmHWM") - before, 0) / 1024


class _CausalSR:
    """CausalSR through the public API, in the evaluation registry's method shape."""

    name = "causalsr"

    def __init__(self, model: str | None, device: str = "cpu"):
        from causalsr.inference.api import load_for_scale

        self._model = model
        self._load = load_for_scale
        self._device = device
        self._ups: dict[int, object] = {}
        self.scales = (load_for_scale(model, device=device).scale,) if model else RUNTIME_SCALES

    def upscaler(self, scale: int):
        if scale not in self._ups:
            self._ups[scale] = self._load(self._model, None if self._model else scale, device=self._device)
        return self._ups[scale]

    def upscale(self, lr, scale: int):
        return self.upscaler(scale).upscale(lr, tile="auto")


def _torch_params(obj) -> int | None:
    """Parameters of the torch modules an evaluation method holds (directly or in a dict), if any."""
    import torch.nn as nn

    modules: list[nn.Module] = []
    for value in vars(obj).values():
        for v in value.values() if isinstance(value, dict) else [value]:
            m = v if isinstance(v, nn.Module) else getattr(v, "model", None)
            if isinstance(m, nn.Module):
                modules.append(m)
    return sum(p.numel() for m in modules for p in m.parameters()) if modules else None


def _lr_image(width: int, height: int, scale: int):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height // scale, width // scale, 3), dtype=np.uint8)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _train_peak(spec: dict) -> dict:
    import torch

    from causalsr.inference.api import load_for_scale

    up = load_for_scale(spec["model"], None if spec["model"] else spec["scale"], device=spec.get("device", "cpu"))
    model, s = up.model.train(), up.scale
    lr = torch.rand(16, 3, 192 // s, 192 // s, device=up.device)
    hr = torch.rand(16, 3, 192 // s * s, 192 // s * s, device=up.device)

    def step():
        q = model.infer_z(lr)
        tokens, pooled = model.context(lr)
        loss = (model.restore(lr, q.rsample(), tokens, pooled) - hr).abs().mean()
        loss.backward()

    return {"train_mem_mb": _peak_rise_mb(step)}


def _method(spec: dict):
    """The method to profile: an evaluation Method, or the CausalSR wrapper with the same interface."""
    name, scale = spec["method"], spec["scale"]
    method: Any
    if name == "causalsr":
        method = _CausalSR(spec["model"], spec.get("device", "cpu"))
    else:
        from causalsr.evaluation.methods import load_method

        method = load_method(name, device=spec.get("device", "cpu"))
    if scale not in method.scales:
        raise ValueError(f"{name} has no x{scale} model (it supports {', '.join(f'x{s}' for s in method.scales)})")
    return method


def _params(name: str, method, scale: int, lr) -> dict:
    """Parameters: CausalSR's inference path, the ncnn peers' graphs [C], else the torch modules held."""
    import torch

    if name in NCNN_PEERS:
        count = ncnn_counts(_ncnn_param_file(method, scale), lr.shape[0] * lr.shape[1])[0]
        return {"params": count, "params_note": "[C] ncnn graph"}
    if name == "causalsr":
        model = method.upscaler(scale).model
        used = [getattr(model, n) for n in INFERENCE_PARTS if getattr(model, n, None) is not None]
        encoder = sum(p.numel() for p in getattr(model, "semantic", torch.nn.Identity()).parameters())
        return {"params": sum(p.numel() for m in used for p in m.parameters()),
                "params_note": f"inference path, incl. {encoder / 1e6:.2f}M frozen encoder"}
    return {"params": _torch_params(method), "params_note": "counted"}


def _gmacs(name: str, method, upscale, lr, scale: int) -> dict:
    """Multiply-accumulates of one inference: FlopCounterMode's FLOPs / 2, or the ncnn peers' from their graphs."""
    from torch.utils.flop_counter import FlopCounterMode

    if name in NCNN_PEERS:
        macs = ncnn_counts(_ncnn_param_file(method, scale), lr.shape[0] * lr.shape[1])[1]
        return {"gmacs": macs / 1e9, "gmacs_note": "[C] ncnn graph"}
    counter = FlopCounterMode(display=False)
    with counter:
        upscale(lr, scale)
    flops = counter.get_total_flops()
    return {"gmacs": flops / 2e9 if flops else None,
            "gmacs_note": "FlopCounterMode / 2" if flops else "n/a (not torch)"}


def _throughput(method, images: str, scale: int) -> float:
    """Median output megapixels per second over the HR images of `images`, MATLAB-bicubic downscaled."""
    import numpy as np

    from causalsr.data.datasets import resolve_dataset
    from causalsr.data.imageio import read_image, to_uint8
    from causalsr.data.imresize import imresize_uint8

    _, files = resolve_dataset(images)
    rates = []
    for i, f in enumerate(files):
        hr = to_uint8(read_image(f).rgb)
        img = imresize_uint8(hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale], 1.0 / scale)
        if i == 0:
            method.upscale(img, scale)  # warm-up
        t = time.perf_counter()
        out = method.upscale(img, scale)
        rates.append(out.shape[0] * out.shape[1] / 1e6 / (time.perf_counter() - t))
    return float(np.median(rates))


def measure(spec: dict) -> dict:
    """Everything but training memory, for one method at one scale (runs in its own process)."""
    import torch

    name, scale, (w, h) = spec["method"], spec["scale"], spec["size"]
    method = _method(spec)
    lr = _lr_image(w, h, scale)
    upscale = (lambda img, s: method.upscaler(s).upscale(img, tile=None)) if name == "causalsr" else method.upscale
    if name == "causalsr":
        method.upscaler(scale)  # load before measuring
    res: dict = {"infer_mem_mb": _peak_rise_mb(lambda: upscale(lr, scale))}
    res.update(_params(name, method, scale, lr))
    res.update(_gmacs(name, method, upscale, lr, scale))
    upscale(lr, scale)  # warm-up
    res["runtime_ms"] = 1000 * _median_time(lambda: upscale(lr, scale), spec["repeats"])
    res["out_mps"] = _throughput(method, spec["images"], scale)
    res["threads"] = torch.get_num_threads()
    return res


def scales_of(name: str, model: str | None, device: str = "cpu") -> tuple[int, ...] | None:
    """The scales (of x2, x3, x4) a method has, from its class or model file without building it; None if unknown."""
    if name == "causalsr":
        if not model:
            return RUNTIME_SCALES
        from causalsr.inference.api import load_for_scale

        return (load_for_scale(model, device=device).scale,)
    from causalsr.evaluation.methods import METHODS

    if name not in METHODS:
        return None
    try:
        return getattr(METHODS.get(name), "scales", None)  # the class: its package is imported only when built
    except ImportError:
        return None


def _worker(spec: dict) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    try:
        result = _train_peak(spec) if spec.get("train") else measure(spec)
    except (ImportError, ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        result = {"error": " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())}
    print(json.dumps(result))


# ------------------------------------------------------------- parent side
def run_worker(spec: dict) -> dict:
    """`measure` (or, with spec["train"], training memory) in a fresh Python process; {"error": ...} on failure."""
    proc = subprocess.run([sys.executable, "-m", "causalsr.evaluation.profiling", json.dumps(spec)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker failed (exit {proc.returncode}): {tail}"}


def _fmt(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def markdown_table(rows: list[dict], size: str, images: str) -> str:
    """The Table V analogue as Markdown: one row per method and scale."""
    head = (f"| method | scale | params | GMACs ({size} out) | inference peak (MB) | training peak (MB, B16 192px) "
            f"| runtime ({size} out, ms) | output MP/s ({images}) |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        scale = f"x{r['scale']}" if r.get("scale") else "-"
        if "error" in r:
            lines.append(f"| {r['method']} | {scale} | unavailable: {r['error']} |" + " |" * 5)
            continue
        params = "n/a" if r.get("params") is None else f"{r['params'] / 1e6:.3f}M"
        if r.get("params_note", "counted") != "counted":
            params += f" ({r['params_note']})"
        note = r.get("gmacs_note", "")
        gmacs = _fmt(r.get("gmacs"), ".2f") + (f" {note}" if note.startswith("[C]") else "")
        lines.append(f"| {r['method']} | {scale} | {params} | {gmacs} | {_fmt(r.get('infer_mem_mb'), '.0f')} "
                     f"| {_fmt(r.get('train_mem_mb'), '.0f')} | {_fmt(r.get('runtime_ms'), '.1f')} "
                     f"| {_fmt(r.get('out_mps'), '.3f')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
