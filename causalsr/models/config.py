"""`ModelConfig`: every constructor argument of the CausalSR model, loaded from YAML."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    """Architecture of a CausalSR model. Keys equal constructor arguments of the parts.

    Switches reproduce Table IV's ablations: `use_cf` (counterfactual learning),
    `use_int` (intervention mechanism), `use_sp` (structured prior; off = a
    context-conditioned diagonal Gaussian with no edges), `use_sct` (semantic
    contextual translation; off = no semantic context), and `plain` (the same
    backbone with no causal parts at all: no Z, no C).
    """

    scale: int = 4
    backbone: str = "efficient"            # registry name in models/backbone.py: efficient | tablei
    backbone_args: dict = field(default_factory=dict)  # extra backbone kwargs (n_feats, n_blocks, width, ...)
    z_dim: int = 8                          # first N_NAMED dims are the named factors
    posterior_feats: int = 32
    p_unknown: float = 0.5                  # prob. of hiding X from the posterior in training
    posterior_spectrum: bool = False        # block-DCT spectrum input to the posterior (off = the paper's encoder)
    posterior_crop: int = 0                 # analyse large inputs on crops of this LR size (the training patch);
                                            # 0 = default
    posterior_lr_depth: int = 0             # full-resolution residual blocks in the posterior's LR branch;
                                            # 0 = the paper's size
    posterior_grid_align: bool = False      # read each image from the origin of the JPEG grid found in it
    posterior_noise_stats: bool = False     # whole-image block noise-level quantiles as posterior input
    posterior_patch_noise: bool = False     # whole-image patch-covariance noise levels as posterior input
    posterior_sd_scale: list = field(default_factory=lambda: [1.0, 1.0, 1.0])  # analyze's +- per named factor,
                                            # fitted on training images (training/interval_calibration.py)
    posterior_mean_knots: dict = field(default_factory=dict)  # analyze's reading correction per named factor,
                                            # {name: [readings, levels]} (training/mean_calibration.py)
    semantic: str = "efficientnet-lite0"    # registry name in models/semantic.py
    semantic_args: dict = field(default_factory=dict)
    sct_dim: int = 256
    sct_heads: int = 8
    sct_dropout: float = 0.1
    prior_components: int = 3
    prior_hidden: int = 32
    prior_layers: int = 2
    prior_graph_samples: int = 4
    prior_temperature: float = 0.5
    mechanism_feats: int = 16
    mechanism_blur_ksize: int = 7
    intervention_hidden: int = 64
    contrast_dim: int = 64
    use_cf: bool = True
    use_int: bool = True
    use_sp: bool = True
    use_sct: bool = True
    plain: bool = False
