"""Export the whole LR -> SR pipeline (posterior mean, context, restorer) to ONNX.

Two graphs, both with a dynamic batch, height and width:

The default graph (``export_onnx(model, path)``, ``causalsr export``) keeps the
latent Z reachable, for ``--do``::

    inputs:  lr              float32 (N, 3, H, W) in [0, 1]
             z_override      float32 (N, z_dim)   latent to use instead of the posterior mean
             use_z_override  float32 (N,)         0 = use the posterior mean, 1 = use z_override
    outputs: sr              float32 (N, 3, s*H, s*W)
             z               float32 (N, z_dim)   the posterior mean of q(Z | Y)

One graph with a 0/1 switch is simpler for runtimes than optional inputs or
two files. To run "as if there were no noise" from ONNX, read `z`, apply the
do-operator in Python (`Upscaler.intervene`) and feed the result back as
`z_override`; the graph itself has no do-operator.

The blind graph (``export_onnx(model, path, blind=True)``, ``causalsr export
--blind``) is the one-input, one-output form ONNX hosts such as chaiNNer
expect: ``input`` float32 (N, 3, H, W) in [0, 1] -> ``output`` float32
(N, 3, s*H, s*W), the blind SR of `CausalSR.forward` (Z = the posterior mean).

Notes:
- Each image of a batch gets its own Z and context, as in PyTorch.
- The posterior's crop rule depends on the input size; while tracing it is
  computed with tensor ops from the traced size (see
  `causalsr.models.posterior`), so the graphs compute PyTorch's Z at every
  input size, not only at the trace size.
- The semantic encoder resizes with antialiasing, which ONNX expresses from
  opset 18 (Resize `antialias`), so opset 18 is the minimum. Two ATen ops the
  TorchScript exporter lacks get small symbolic functions, registered only
  while exporting.
- The legacy TorchScript exporter is used: the dynamo exporter needs
  `onnxscript`, which the `export` extra does not install.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from causalsr.atomic import atomic_path

MIN_OPSET = 18
DEFAULT_OPSET = 18
INPUT_NAMES = ["lr", "z_override", "use_z_override"]
OUTPUT_NAMES = ["sr", "z"]
BLIND_INPUT_NAMES = ["input"]
BLIND_OUTPUT_NAMES = ["output"]


class PipelineForExport(nn.Module):
    """CausalSR inference as one traceable module: lr, z_override, use_z_override -> sr, z."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model: Any = model.eval()  # a CausalSR (infer_z, context, restore)

    def forward(self, lr: torch.Tensor, z_override: torch.Tensor, use_z_override: torch.Tensor):
        z_mean = self.model.infer_z(lr).mean
        tokens, pooled = self.model.context(lr)
        z = z_mean + use_z_override.view(-1, 1) * (z_override - z_mean)
        return self.model.restore(lr, z, tokens, pooled), z_mean


class BlindPipelineForExport(nn.Module):
    """Blind CausalSR inference as one traceable module: input -> output (`CausalSR.forward`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model: Any = model.eval()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)


def _diag_embed(g, x, offset, dim1, dim2):
    """aten::diag_embed for the default (last-dim) case: x[..., :, None] * I."""
    col = g.op("Unsqueeze", x, g.op("Constant", value_t=torch.tensor([-1])))
    # the identity is shaped at run time: the size is not always inferred (the patch-noise branch's matmuls)
    last = g.op("Slice", g.op("Shape", x), g.op("Constant", value_t=torch.tensor([-1])),
                g.op("Constant", value_t=torch.tensor([2 ** 62])))
    square = g.op("ConstantOfShape", g.op("Concat", last, last, axis_i=0), value_t=torch.tensor([0.0]))
    return g.op("Mul", col, g.op("EyeLike", square))


def _bilinear_aa(g, x, output_size, align_corners, scale_factors):
    """aten::_upsample_bilinear2d_aa -> Resize(linear, antialias=1) to a fixed spatial size."""
    from torch.onnx import symbolic_helper as sh

    size = sh._maybe_get_const(output_size, "is")
    nc = g.op("Slice", g.op("Shape", x), g.op("Constant", value_t=torch.tensor([0])),
              g.op("Constant", value_t=torch.tensor([2])))
    sizes = g.op("Concat", nc, g.op("Constant", value_t=torch.tensor(list(size), dtype=torch.int64)), axis_i=0)
    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    mode = "align_corners" if sh._maybe_get_const(align_corners, "b") else "half_pixel"
    return g.op("Resize", x, empty, empty, sizes, mode_s="linear", antialias_i=1, exclude_outside_i=1,
                coordinate_transformation_mode_s=mode)


@contextlib.contextmanager
def _symbolics(opset: int) -> Iterator[None]:
    ops = {"aten::diag_embed": _diag_embed, "aten::_upsample_bilinear2d_aa": _bilinear_aa}
    for name, fn in ops.items():
        torch.onnx.register_custom_op_symbolic(name, fn, opset)
    try:
        yield
    finally:
        for name in ops:
            torch.onnx.unregister_custom_op_symbolic(name, opset)


def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET, sample_size: int = 64,
                blind: bool = False) -> Path:
    """Write the pipeline of `model` (a CausalSR) to `path` as ONNX, atomically.

    Args:
        model: a CausalSR model with a latent Z (not the `plain` ablation).
        path: output `.onnx` file.
        opset: ONNX opset, at least 18.
        sample_size: side of the dummy LR used for tracing; the graph does not
            depend on it (batch, height and width are dynamic).
        blind: write the one-input blind graph (``input`` -> ``output``)
            instead of the default graph with the Z-override inputs.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: the pipeline's antialiased resize needs opset {MIN_OPSET} "
                         "or newer")
    if getattr(model.cfg, "plain", False):
        raise ValueError("the plain ablation has no latent Z; export it with a checkpoint of the full model")
    path = Path(path)
    was_training = model.training
    # the exporter restores the wrapper's own mode afterwards, so the wrapper must be in eval mode too
    pipe: nn.Module
    if blind:
        pipe = BlindPipelineForExport(model).eval()
        # a batch of 2 keeps the batch size out of the trace's constants
        args: tuple[torch.Tensor, ...] = (torch.rand(2, 3, sample_size, sample_size),)
        inputs, outputs = BLIND_INPUT_NAMES, BLIND_OUTPUT_NAMES
        dynamic = {"input": {0: "batch", 2: "height", 3: "width"},
                   "output": {0: "batch", 2: "out_height", 3: "out_width"}}
    else:
        pipe = PipelineForExport(model).eval()
        cfg: Any = model.cfg  # a CausalSR's ModelConfig
        args = (torch.rand(2, 3, sample_size, sample_size), torch.zeros(2, cfg.z_dim), torch.zeros(2))
        inputs, outputs = INPUT_NAMES, OUTPUT_NAMES
        dynamic = {"lr": {0: "batch", 2: "height", 3: "width"}, "z_override": {0: "batch"},
                   "use_z_override": {0: "batch"}, "sr": {0: "batch", 2: "out_height", 3: "out_width"},
                   "z": {0: "batch"}}
    validate = torch.distributions.Distribution._validate_args
    with atomic_path(path) as tmp, _symbolics(opset), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter deprecation chatter
        # distribution argument checks are data-dependent branches: keep them out of the trace
        torch.distributions.Distribution.set_default_validate_args(False)
        try:
            torch.onnx.export(pipe, args, str(tmp), dynamo=False, opset_version=opset, input_names=inputs,
                              output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)
        finally:
            torch.distributions.Distribution.set_default_validate_args(validate)
            model.train(was_training)
    return path


__all__ = ["export_onnx", "PipelineForExport", "BlindPipelineForExport", "DEFAULT_OPSET", "MIN_OPSET",
           "INPUT_NAMES", "OUTPUT_NAMES", "BLIND_INPUT_NAMES", "BLIND_OUTPUT_NAMES"]
