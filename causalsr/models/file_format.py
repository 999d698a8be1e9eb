"""Model-file format versions, and the migration of an older file's tensors to the current model's names.

- Format 1 (``"causalsr-inference/1"`` in the JSON beside the weights; the
  safetensors file carries no version): every tensor but the frozen semantic
  encoder's, training-only parts included; the posterior's LR branch is one
  ``posterior.lr_branch`` Sequential, of which a slice ran before and one after
  ``lr_blocks``.
- Format 2 (``"causalsr/2"`` in the safetensors metadata, key ``format``): the
  encoder's weights are in the file (stored fp16 in the bundled models),
  training-only parts are optional (bundled models have none), the LR branch is
  ``lr_stem``, ``lr_blocks``, ``lr_down``, and the tensor `CONFIG_KEY` holds the
  model config as UTF-8 JSON, so that a loader that sees only tensors (spandrel)
  can build the model.

`upgrade_names` maps format-1 names to format 2; the trainer's checkpoints and
warm starts go through it too.
"""
from __future__ import annotations

import json

import torch

FORMAT_V1 = "causalsr-inference/1"
FORMAT = "causalsr/2"
CONFIG_KEY = "causalsr.config"
ENCODER_PREFIX = "semantic."
# Parts only training uses: Eq. 20's discriminator and Eq. 16's contrastive heads with their momentum copies.
TRAINING_ONLY = ("discriminator.", "f_head.", "g_head.", "f_momentum.", "g_momentum.")
_RENAMES = (("posterior.lr_branch.0.", "posterior.lr_stem.0."),
            ("posterior.lr_branch.2.", "posterior.lr_down.0."),
            ("posterior.lr_branch.4.", "posterior.lr_down.2."))


def upgrade_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with format-1 tensor names renamed to format 2 (a format-2 state is returned as is)."""
    out = {}
    for key, value in state.items():
        for old, new in _RENAMES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def config_tensor(info: dict) -> torch.Tensor:
    """`info` (arch, scale, model_config) as a uint8 tensor of its JSON, for `CONFIG_KEY`."""
    data = json.dumps(info, sort_keys=True).encode("utf-8")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def read_config_tensor(tensor: torch.Tensor) -> dict:
    """The dict `config_tensor` stored."""
    return json.loads(bytes(tensor.cpu().numpy().tobytes()).decode("utf-8"))
