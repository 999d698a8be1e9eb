"""`CausalSR`: the full model of Section III, composed from its parts.

Parts and parameter blocks (Algorithm 2):
- phi: `posterior` q_phi(Z | X, Y) (Eq. 2) and the structured `prior` p(Z) (Eq. 4-6).
- theta: `restorer` R(Y, Z, C) (Fig. 2, Table I or the efficient variant),
  `mechanism` f_y(X, Z) (Eq. 1-2), `sct` (Eq. 8-10) and the contrastive heads
  f, g of Eq. 16.
- psi: `intervention` g_psi (Eq. 17) and the adaptive strength h_psi (Alg. 1 line 7).
- disc: the latent discriminator of Eq. 20.
The frozen semantic encoder E (Eq. 7) belongs to no block. Model files hold its
weights; a new model takes them from the encoder's package, and training
checkpoints leave them out. The discriminator and the contrastive heads (with
their momentum copies) serve training only; a model file may leave them out.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from causalsr.causal.counterfactuals import AdaptiveStrength
from causalsr.factors import N_NAMED
from causalsr.models.backbone import BACKBONES
from causalsr.models.config import ModelConfig
from causalsr.models.intervention import InterventionNet, LatentDiscriminator
from causalsr.models.mechanism import DegradationMechanism
from causalsr.models.posterior import DegradationPosterior
from causalsr.models.prior import StructuredPrior
from causalsr.models.semantic import SCT, SEMANTIC_ENCODERS, build_semantic_encoder
from causalsr.yaml_config import ConfigError


def projection_head(in_dim: int, out_dim: int) -> nn.Sequential:
    """2-layer MLP projection used by the contrastive heads f and g (Eq. 16)."""
    return nn.Sequential(nn.Linear(in_dim, 2 * out_dim), nn.ReLU(inplace=True), nn.Linear(2 * out_dim, out_dim))


class CausalSR(nn.Module):
    """CausalSR model. Inference: `forward(lr)`; training: see `causalsr.training.losses.Objective`.

    Args:
        cfg: a `ModelConfig`; its switches (`use_cf`, `use_int`, `use_sp`,
            `use_sct`, `plain`) build the ablations of Table IV.
        training_parts: build the parts only training uses (discriminator,
            contrastive heads f and g and their momentum copies).
        pretrained_encoder: load the semantic encoder's pretrained weights; False
            builds an encoder whose weights model files carry untrained, for a
            loader that then loads them from the file.
    """

    def __init__(self, cfg: ModelConfig, training_parts: bool = True, pretrained_encoder: bool = True):
        super().__init__()
        if cfg.z_dim < N_NAMED:
            raise ConfigError(f"z_dim must be at least {N_NAMED} (the named factors), got {cfg.z_dim}")
        self.cfg = cfg
        self.scale = cfg.scale
        causal = not cfg.plain
        self.use_sct = causal and cfg.use_sct
        self.use_int = causal and cfg.use_int
        self.use_cf = causal and cfg.use_cf
        d = cfg.sct_dim
        if causal:
            self.posterior = DegradationPosterior(
                scale=cfg.scale, z_dim=cfg.z_dim, n_feats=cfg.posterior_feats, p_unknown=cfg.p_unknown,
                spectrum=cfg.posterior_spectrum, analysis_crop=cfg.posterior_crop,
                lr_depth=cfg.posterior_lr_depth, grid_align=cfg.posterior_grid_align,
                noise_stats=cfg.posterior_noise_stats, patch_noise=cfg.posterior_patch_noise,
            )
            # w/o SP: one component and no edges, i.e. a context-conditioned diagonal Gaussian.
            self.prior = StructuredPrior(
                z_dim=cfg.z_dim, ctx_dim=d, n_components=cfg.prior_components if cfg.use_sp else 1,
                hidden=cfg.prior_hidden, n_layers=cfg.prior_layers,
                n_graph_samples=cfg.prior_graph_samples, temperature=cfg.prior_temperature,
            )
            self.structured = cfg.use_sp
            self.mechanism = DegradationMechanism(
                scale=cfg.scale, z_dim=cfg.z_dim, n_feats=cfg.mechanism_feats, blur_ksize=cfg.mechanism_blur_ksize
            )
            if training_parts:
                self.f_head = projection_head(self.posterior.embed_dim, cfg.contrast_dim)
                self.g_head = projection_head(cfg.z_dim, cfg.contrast_dim)
        if self.use_sct:
            untrained = not pretrained_encoder and SEMANTIC_ENCODERS.get(cfg.semantic).in_model_file
            encoder_args = dict(cfg.semantic_args, **({"pretrained": False} if untrained else {}))
            self.semantic = build_semantic_encoder(cfg.semantic, **encoder_args)
            self.sct = SCT(self.semantic.out_dim, d=d, heads=cfg.sct_heads, dropout=cfg.sct_dropout)
        if self.use_int:
            self.intervention = InterventionNet(z_dim=cfg.z_dim, ctx_dim=d, hidden=cfg.intervention_hidden)
            if training_parts:
                self.discriminator = LatentDiscriminator(z_dim=cfg.z_dim, hidden=cfg.intervention_hidden)
        if self.use_cf:
            self.h_psi = AdaptiveStrength(scale=cfg.scale)
        self.cond_dim = cfg.z_dim + d
        self.restorer = BACKBONES.get(cfg.backbone)(
            scale=cfg.scale, cond_dim=self.cond_dim, ctx_dim=d, **cfg.backbone_args
        )
        self._xavier_init()
        if causal and training_parts:
            # Alg. 2 line 20: momentum (EMA) copies of the contrastive encoders provide the keys.
            self.f_momentum = copy.deepcopy(self.f_head).requires_grad_(False)
            self.g_momentum = copy.deepcopy(self.g_head).requires_grad_(False)

    # ------------------------------------------------------------------ setup
    def _xavier_init(self) -> None:
        """Alg. 2 line 1: Xavier initialisation of every trainable conv/linear layer.

        Layers a part deliberately initialises (e.g. zero-initialised FiLM or
        residual outputs that make conditioning start as identity) carry
        `keep_init = True` and are left alone; the frozen encoder is pretrained.
        """
        for name, m in self.named_modules():
            if name.startswith("semantic") or getattr(m, "keep_init", False):
                continue
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)) and m.weight.requires_grad:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for name, m in self.named_modules():
            if hasattr(m, "reset_conditioning") and not name.startswith("semantic"):
                m.reset_conditioning()

    def parameter_blocks(self) -> dict[str, list[nn.Parameter]]:
        """The parameter blocks of Algorithm 2 (phi, theta, psi) plus the discriminator."""
        groups = {
            "phi": ["posterior", "prior"],
            "theta": ["restorer", "mechanism", "sct", "f_head", "g_head"],
            "psi": ["intervention", "h_psi"],
            "disc": ["discriminator"],
        }
        return {
            block: [p for n in names if hasattr(self, n) for p in getattr(self, n).parameters() if p.requires_grad]
            for block, names in groups.items()
        }

    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """Alg. 2 line 20: f_m <- m f_m + (1 - m) f (for both contrastive heads)."""
        if self.cfg.plain:
            return
        for online, ema in ((self.f_head, self.f_momentum), (self.g_head, self.g_momentum)):
            for p, q in zip(online.parameters(), ema.parameters()):
                q.mul_(m).add_(p.detach(), alpha=1.0 - m)

    # ------------------------------------------------------------ components
    def context(self, img: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """C = SCT(E(img)) (Eq. 7-10): context tokens (B, N, d) and pooled (B, d).

        At inference `img` is the LR image (the encoder resizes it to its input
        size, which is the bicubic upsampling of DESIGN.md); in training the HR
        image gives the stop-gradient target of L_sem's second term.
        """
        b = img.shape[0]
        if not self.use_sct:
            return None, img.new_zeros(b, self.cfg.sct_dim)
        tokens = self.semantic(img)
        return self.sct(tokens)

    def semantic_features(self, img: torch.Tensor) -> torch.Tensor:
        """Pooled frozen-encoder features S (Eq. 7), for L_sem and semantic clustering."""
        if not self.use_sct:
            return img.new_zeros(img.shape[0], 1)
        return self.semantic(img).mean(dim=1)

    def infer_z(self, lr: torch.Tensor) -> torch.distributions.MultivariateNormal | None:
        """The inference posterior q(Z | Y) (X unknown); None for the plain model."""
        if self.cfg.plain:
            return None
        return self.posterior(lr, None)

    def restore(self, lr: torch.Tensor, z: torch.Tensor | None, ctx_tokens: torch.Tensor | None,
                ctx_pooled: torch.Tensor, ctx_box=None) -> torch.Tensor:
        """X_hat = R(Y, Z, C), conditioned on [Z, pooled C] and the context tokens.

        Conditioning with batch 1 is broadcast over a batch of tiles; `ctx_box`
        (top, left, bottom, right as fractions) says where a tile lies in the
        whole image, so it reads the context map at its own position.
        """
        b = lr.shape[0]
        if z is None:
            z = ctx_pooled.new_zeros(ctx_pooled.shape[0], self.cfg.z_dim)
        cond = torch.cat([z, ctx_pooled], dim=1).expand(b, -1)
        tokens = None if ctx_tokens is None else ctx_tokens.expand(b, -1, -1)
        return self.restorer(lr, cond, tokens, ctx_box=ctx_box)

    def condition(self, lr: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Per-image conditioning computed once: (posterior mean Z, context tokens, pooled context)."""
        q = self.infer_z(lr)
        tokens, pooled = self.context(lr)
        return (q.mean if q is not None else None), tokens, pooled

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Blind SR from Y alone: Z = mean of q(Z | Y), C from Y, then R(Y, Z, C)."""
        z, tokens, pooled = self.condition(lr)
        return self.restore(lr, z, tokens, pooled)

    def prior_adjacency(self) -> torch.Tensor | None:
        """None (sample graphs from the ER mixture) or, without the structured prior, the empty graph."""
        if self.structured:
            return None
        return torch.zeros(self.cfg.z_dim, self.cfg.z_dim, device=self.prior.pi_logits.device)

    def do(self, z: torch.Tensor, ctx_pooled: torch.Tensor, interventions: dict[int, float]) -> torch.Tensor:
        """do(Z_i = v): the structured prior's do-operator (cut parents, fix, recompute descendants)."""
        if self.cfg.plain:
            raise ValueError("the plain model has no latent factors to intervene on")
        return self.prior.do(z, ctx_pooled, interventions, adjacency=self.prior_adjacency())


_MOVED = ("FORMAT", "save_pretrained", "load_pretrained", "with_model_overrides")


def __getattr__(name: str):
    """Older import path: the model-file functions live in `causalsr.models.model_file`."""
    if name in _MOVED:
        from causalsr.models import model_file

        return getattr(model_file, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
