"""A spandrel architecture for causalsr model files (extra `spandrel`), for hosts that load models with spandrel.

    import spandrel
    from causalsr.inference.spandrel_arch import register
    register()  # once per process: adds CausalSR to spandrel.MAIN_REGISTRY
    model = spandrel.ModelLoader().load_from_file("causalsr/weights/x4/model.safetensors")

A model file of format 2 (`models/file_format.py`) is detected by its unique
keys, the config tensor among them. Hyperparameters that tensor shapes fix
(scale, z_dim, widths, depths, the spectrum input) are read from the shapes;
the rest (the posterior's analysis crop, the encoder's input size, attention
heads) from the file's config tensor, which only these files have. Older
files hold no encoder and are not detected: load them with `causalsr.load`.

The model is `CausalSR` itself, whose forward is blind SR: Z is the posterior
mean of the whole input and C its semantic context. So tiling is DISCOURAGED:
each tile would get its own Z and C. `--do` and `analyze` are not spandrel
operations; they need causalsr's CLI or API.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from causalsr.models.causalsr import CausalSR
from causalsr.models.config import ModelConfig
from causalsr.models.file_format import CONFIG_KEY, ENCODER_PREFIX, TRAINING_ONLY, read_config_tensor
from causalsr.yaml_config import from_dict

ARCH_ID = "CausalSR"
DETECT_KEYS = (CONFIG_KEY, "posterior.unknown", "posterior.head.2.weight", "restorer.head.weight")


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    """How many consecutive indices `prefix<i>.` the keys hold."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n


def hyperparameters(state: dict[str, torch.Tensor], stored: dict[str, Any]) -> dict[str, Any]:
    """The ModelConfig of `state`: `stored` (the file's config tensor) with every shape-fixed value read from
    the shapes."""
    cfg = dict(stored, backbone_args=dict(stored.get("backbone_args", {})))
    head = state["posterior.head.2.weight"].shape[0]  # z mean, z diagonal, z(z-1)/2 Cholesky entries
    cfg["z_dim"] = (math.isqrt(9 + 8 * head) - 3) // 2
    cfg["posterior_feats"] = state["posterior.unknown"].shape[0]
    cfg["posterior_spectrum"] = "posterior.spectrum_mlp.0.weight" in state
    cfg["posterior_lr_depth"] = _count(state, "posterior.lr_blocks.")
    for option, key in (("posterior_noise_stats", "posterior.noise_mlp.0.weight"),
                        ("posterior_patch_noise", "posterior.patch_noise_mlp.0.weight")):
        if key in state or option in cfg:  # files from before the option lack the key
            cfg[option] = key in state
    cfg["scale"] = math.isqrt(state["posterior.hr_branch.0.weight"].shape[1] // 3)
    if "sct.adapter.weight" in state:
        cfg["sct_dim"] = state["sct.adapter.weight"].shape[0]
    if cfg.get("backbone") == "efficient":
        args = cfg["backbone_args"]
        args["n_feats"], in_ch = state["restorer.head.weight"].shape[:2]
        args["factor_maps"] = in_ch - 3
        args["n_blocks"] = _count(state, "restorer.blocks.")
        args["cond_hidden"] = state["restorer.conditioning.cond.0.weight"].shape[0]
    return cfg


def build(state: dict[str, torch.Tensor]) -> tuple[CausalSR, dict[str, torch.Tensor]]:
    """An untrained `CausalSR` shaped for `state`, and `state` without its config tensor (what it loads)."""
    state = dict(state)
    stored = read_config_tensor(state.pop(CONFIG_KEY))["model_config"]
    cfg = from_dict(ModelConfig, hyperparameters(state, stored))
    model = CausalSR(cfg, training_parts=any(k.startswith(TRAINING_ONLY) for k in state),
                     pretrained_encoder=not any(k.startswith(ENCODER_PREFIX) for k in state))
    return model.eval(), state


def architecture():
    """The spandrel `Architecture` of causalsr model files (imports spandrel)."""
    from spandrel import Architecture, ImageModelDescriptor, ModelTiling
    from spandrel.util import KeyCondition

    class CausalSRArch(Architecture[CausalSR]):
        def __init__(self) -> None:
            super().__init__(id=ARCH_ID, name="CausalSR", detect=KeyCondition.has_all(*DETECT_KEYS))

        def load(self, state_dict):
            model, state = build(state_dict)
            args = model.cfg.backbone_args
            tags = [f"{args['n_feats']}nf", f"{args['n_blocks']}nb"] if "n_feats" in args else []
            return ImageModelDescriptor(
                model, state, architecture=self, purpose="SR", tags=tags + [f"z{model.cfg.z_dim}"],
                supports_half=False, supports_bfloat16=False, scale=model.scale, input_channels=3,
                output_channels=3, tiling=ModelTiling.DISCOURAGED)

    return CausalSRArch()


def register(registry=None) -> None:
    """Add the CausalSR architecture to `registry` (default spandrel's MAIN_REGISTRY), ahead of the built-in ones;
    a no-op if it is there already. ImportError naming the extra when spandrel is not installed."""
    try:
        from spandrel import MAIN_REGISTRY, ArchSupport
    except ImportError as e:
        raise ImportError(f"spandrel could not be imported ({e}); "
                          "install it with: pip install 'causalsr[spandrel]'") from e
    registry = MAIN_REGISTRY if registry is None else registry
    if ARCH_ID in registry:
        return
    others = tuple(a.architecture.id for a in registry.architectures())
    registry.add(ArchSupport.from_architecture(architecture(), before=others))
