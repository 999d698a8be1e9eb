"""Plain test helpers (data paths, tiny models, synthetic image folders); `from helpers import ...`.

pytest puts tests/ on sys.path for the root conftest, so every test file can import this module.
"""
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo beside a copy of shared/; CAUSALSR_SHARED overrides.
SHARED = Path(os.environ.get("CAUSALSR_SHARED", REPO.parent / "shared"))
SET5 = SHARED / "data" / "benchmarks" / "Set5" / "HR"
BABY = str(SET5 / "baby.png")
SMOKE = str(REPO / "configs" / "smoke.yaml")


def tiny_model(scale: int = 2):
    """A small CausalSR for inference tests (random encoder, randomised conditioning so Z and C matter)."""
    from causalsr.models.causalsr import CausalSR
    from causalsr.models.config import ModelConfig

    torch.manual_seed(0)
    model = CausalSR(ModelConfig(scale=scale, backbone_args=dict(n_feats=8, n_blocks=2, cond_hidden=8), z_dim=4,
                                 posterior_feats=8, semantic_args=dict(pretrained=False, input_size=64), sct_dim=16,
                                 sct_heads=2, prior_hidden=8, mechanism_feats=4, intervention_hidden=8, contrast_dim=8))
    for name, p in model.restorer.named_parameters():
        if ".cond." in name or ".conv2." in name or name.startswith("upsample."):
            nn.init.normal_(p, std=0.03)  # the zero-initialised parts too, so Z and C change the output
    return model.eval()


def write_images(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    """Smooth random RGB images (low-frequency content an SR model can learn)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"img{i}.png")
    return folder


def tiny_config(scale: int = 2, **overrides):
    from causalsr.models.config import ModelConfig

    base = dict(
        scale=scale, z_dim=6, posterior_feats=8, sct_dim=16, sct_heads=2, prior_hidden=8,
        mechanism_feats=4, intervention_hidden=16, contrast_dim=8,
        backbone_args={"n_feats": 8, "n_blocks": 1, "cond_hidden": 8},
        semantic_args={"input_size": 64},
    )
    base.update(overrides)
    return ModelConfig(**base)
