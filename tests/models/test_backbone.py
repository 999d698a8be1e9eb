"""Restorers: shapes at every scale and odd sizes, identity-start conditioning, Table I size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from causalsr.models.backbone import (
    BACKBONES,
    TABLE_I_DECODER,
    TABLE_I_ENCODER,
    EfficientRestorer,
    LevelConditioning,
    TableIRestorer,
    _resize_map,
    build_backbone,
)

COND, CTX = 12, 16


def small(name: str, scale: int):
    if name == "efficient":
        return EfficientRestorer(scale=scale, cond_dim=COND, ctx_dim=CTX, n_feats=8, n_blocks=2)
    return TableIRestorer(scale=scale, cond_dim=COND, ctx_dim=CTX, width=0.0625)


def perturb_conditioning(model):
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, LevelConditioning):
            for p in m.parameters():
                torch.nn.init.normal_(p, std=0.1)


def test_registry():
    assert set(BACKBONES.names()) == {"efficient", "tablei"}
    assert isinstance(build_backbone("efficient", scale=2), EfficientRestorer)


@pytest.mark.parametrize("name", ["efficient", "tablei"])
@pytest.mark.parametrize("scale,h,w", [(2, 7, 9), (3, 5, 6), (4, 6, 5), (8, 3, 4), (4, 1, 2)])
@pytest.mark.parametrize("n_tokens", [None, 9, 5])
def test_output_shape(name, scale, h, w, n_tokens):
    model = small(name, scale)
    ctx = None if n_tokens is None else torch.randn(2, n_tokens, CTX)  # 5 tokens: not a square grid
    sr = model(torch.rand(2, 3, h, w), torch.randn(2, COND), ctx)
    assert sr.shape == (2, 3, scale * h, scale * w) and torch.isfinite(sr).all()


@pytest.mark.parametrize("name", ["efficient", "tablei"])
def test_conditioning_starts_as_identity_and_learns(name):
    model = small(name, 2)
    with torch.no_grad():  # give the zero-initialised branches weights, as after some training
        for n, p in model.named_parameters():
            if ".conv2." in n or n.startswith(("upsample.", "output.")):
                p.normal_(std=0.05)
    lr = torch.rand(1, 3, 8, 8)
    a = model(lr, torch.randn(1, COND), torch.randn(1, 4, CTX))
    b = model(lr, torch.randn(1, COND), None)
    torch.testing.assert_close(a, b)  # gamma = 1, beta = 0, context adds 0
    a.square().mean().backward()
    heads = [m for m in model.modules() if isinstance(m, LevelConditioning)]
    assert heads and all(m.film.weight.grad.abs().sum() > 0 and m.ctx.weight.grad.abs().sum() > 0 for m in heads)
    assert all(m.film.keep_init and m.ctx.keep_init for m in heads)  # survive CausalSR's Xavier init
    perturb_conditioning(model)
    with torch.no_grad():
        c1, c2 = torch.randn(2, 1, COND)
        assert (model(lr, c1, None) - model(lr, c2, None)).abs().max() > 1e-4


def test_fresh_efficient_restorer_is_exactly_bicubic():
    # residual branches and the upsampler start at zero (zero_init), so R starts as the bicubic residual
    model = EfficientRestorer(scale=3, cond_dim=COND, ctx_dim=CTX, n_feats=8, n_blocks=1)
    lr = torch.rand(1, 3, 5, 7)
    torch.testing.assert_close(model(lr, torch.zeros(1, COND)),
                               F.interpolate(lr, scale_factor=3, mode="bicubic", align_corners=False))


def test_efficient_default_size():
    n = sum(p.numel() for p in EfficientRestorer().parameters())
    assert 250_000 <= n <= 450_000, n


def table_i_formula(width: float = 1.0) -> int:
    """Parameters of Table I (convs + biases), computed independently of the module."""
    enc = [round(c * width) for c in TABLE_I_ENCODER]
    dec = [round(c * width) for c in TABLE_I_DECODER]
    n, c_in = 0, 3
    for c in enc:  # two 3x3 convs per level
        n += (9 * c_in * c + c) + (9 * c * c + c)
        c_in = c
    for c in dec:  # 4x4 transposed conv + two 3x3 convs
        n += (16 * c_in * c + c) + 2 * (9 * c * c + c)
        c_in = c
    return n + 9 * c_in * 3 + 3


def test_table_i_parameter_count():
    model = TableIRestorer(scale=4, width=1.0)
    parts = ("encoder", "decoder", "output")
    counted = sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] in parts)
    # worked by hand: encoder 18,843,200 + decoder 17,410,880 + output 1,731
    assert counted == table_i_formula(1.0) == 36_255_811
    assert table_i_formula(1.0) < sum(p.numel() for p in model.parameters())  # plus conditioning


def test_tablei_has_no_skip_connections():
    """The decoder sees only the bottleneck: the output is unchanged if the encoder's early levels are bypassed."""
    model = small("tablei", 2)
    lr = torch.rand(1, 3, 8, 8)
    feats = {}
    model.encoder[-1].register_forward_hook(lambda m, i, o: feats.setdefault("bottleneck", o))
    sr = model(lr, torch.zeros(1, COND))
    x = feats["bottleneck"]
    h, _ = model.conditioning(torch.zeros(1, COND), None)
    for level, cond in zip(model.decoder, model.dec_cond):
        x = cond(level(x), h, None)
    up = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(sr, model.output(x) + up)


def test_ctx_box_samples_the_tile_of_the_full_map():
    m = torch.randn(2, 4, 5, 5)
    full = _resize_map(m, (40, 48), None)
    torch.testing.assert_close(_resize_map(m, (40, 48), (0.0, 0.0, 1.0, 1.0)), full)
    y0, x0, y1, x1 = 8, 20, 30, 48
    tile = _resize_map(m, (y1 - y0, x1 - x0), (y0 / 40, x0 / 48, y1 / 40, x1 / 48))
    torch.testing.assert_close(tile, full[..., y0:y1, x0:x1])


def test_efficient_tiles_match_whole_image_with_context():
    model = EfficientRestorer(scale=2, cond_dim=COND, ctx_dim=CTX, n_feats=8, n_blocks=1)
    perturb_conditioning(model)
    lr, cond, ctx = torch.rand(1, 3, 16, 16), torch.randn(1, COND), torch.randn(1, 4, CTX)
    with torch.no_grad():
        whole = model(lr, cond, ctx)
        left = model(lr[..., :, :10], cond, ctx, ctx_box=(0.0, 0.0, 1.0, 10 / 16))
    # away from the tile border (5 convs deep: 5 LR px) the tile equals the whole image
    torch.testing.assert_close(left[..., :, :8], whole[..., :, :8])


@pytest.mark.parametrize("name", ["efficient", "tablei"])
def test_factor_maps_make_the_output_depend_on_the_named_factors_from_the_start(name):
    """With zero-initialised FiLM heads Z cannot act through FiLM, but the factor maps enter the first conv."""
    from causalsr.models.backbone import build_backbone

    torch.manual_seed(0)
    kwargs = dict(n_feats=8, n_blocks=1) if name == "efficient" else dict(width=1 / 16)
    net = build_backbone(name, scale=2, cond_dim=12, ctx_dim=4, cond_hidden=8, factor_maps=3, trunk="silu", **kwargs)
    last = net.upsample[0] if name == "efficient" else net.output
    torch.nn.init.normal_(last.weight, std=0.1)  # the output conv starts at zero too
    lr, cond = torch.rand(1, 3, 16, 16), torch.zeros(1, 12)
    told = cond.clone()
    told[0, 1] = 0.5  # the noise factor
    free = cond.clone()
    free[0, 5] = 0.5  # an unnamed dimension: reaches R only through the (zero) FiLM heads
    with torch.no_grad():
        base = net(lr, cond)
        assert not torch.equal(net(lr, told), base)  # (Table I at this width shrinks the change to ~1e-7)
        assert torch.equal(net(lr, free), base)


def test_silu_trunk_cannot_output_all_zeros_where_relu_did():
    from causalsr.models.backbone import Conditioning

    for trunk, dead in (("relu", True), ("silu", False)):
        c = Conditioning(6, 4, 8, trunk)
        torch.nn.init.constant_(c.cond[0].bias, -10.0)  # every pre-activation negative
        h, _ = c(torch.rand(5, 6), None)
        assert bool((h == 0).all()) is dead
    with pytest.raises(ValueError, match="trunk must be one of"):
        Conditioning(6, 4, 8, "tanh")
