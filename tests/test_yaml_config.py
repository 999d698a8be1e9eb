import pytest

from causalsr.models.config import ModelConfig
from causalsr.training.config import TrainConfig
from causalsr.yaml_config import ConfigError, load_config
from helpers import REPO


def test_overrides_coerce_numbers_by_field_type(tmp_path):
    cfg = load_config(TrainConfig, None, ["optim.lr_theta=1e-4", "model.scale=2", "loss.w_cf=1"])
    assert cfg.optim.lr_theta == 1e-4 and isinstance(cfg.optim.lr_theta, float)
    assert cfg.model.scale == 2 and isinstance(cfg.loss.w_cf, float)


def test_unknown_keys_and_bad_values_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(ModelConfig, None, ["scael=4"])
    with pytest.raises(ConfigError, match="expected float"):
        load_config(TrainConfig, None, ["optim.lr_theta=fast"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(TrainConfig, bad)


def test_presets_load():
    from pathlib import Path

    from causalsr.training.posterior_fit import PosteriorFitConfig

    presets = sorted(Path(__file__).resolve().parents[1].joinpath("configs").glob("*.yaml"))
    assert any(p.stem.startswith("posterior-fit") for p in presets)
    for p in presets:
        load_config(PosteriorFitConfig if p.stem.startswith("posterior-fit") else TrainConfig, p)


def test_preset_inherits_its_base_and_overrides_only_what_differs(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {scale: 2, z_dim: 8}\ndata: {batch_size: 8, patch_size: 64}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ndata: {batch_size: 4}\n")
    cfg = load_config(TrainConfig, tmp_path / "child.yaml")
    assert (cfg.model.scale, cfg.data.batch_size, cfg.data.patch_size) == (2, 4, 64)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config(TrainConfig, tmp_path / "loop.yaml")


def test_shipped_act_presets_load_through_their_bases():
    cfg = load_config(TrainConfig, REPO / "configs" / "cpu-act.yaml")
    assert cfg.model.backbone_args["factor_maps"] == 3 and cfg.model.backbone_args["trunk"] == "silu"
    assert cfg.data.batch_size == 16 and cfg.loss.p_oracle == 0.5 and cfg.data.sampler.jpeg_quality == (10, 95)


def test_replace_tag_replaces_the_bases_mapping_instead_of_merging(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {backbone_args: {n_feats: 48, n_blocks: 8, trunk: silu}}\n")
    (tmp_path / "merged.yaml").write_text("base: base.yaml\nmodel: {backbone_args: {width: 0.5}}\n")
    (tmp_path / "replaced.yaml").write_text("base: base.yaml\nmodel: {backbone_args: !replace {width: 0.5}}\n")
    merged = load_config(TrainConfig, tmp_path / "merged.yaml").model.backbone_args
    replaced = load_config(TrainConfig, tmp_path / "replaced.yaml").model.backbone_args
    assert merged == {"n_feats": 48, "n_blocks": 8, "trunk": "silu", "width": 0.5}
    assert replaced == {"width": 0.5} and type(replaced) is dict  # a plain dict: YAML-dumpable in config.yaml
