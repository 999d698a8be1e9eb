import numpy as np
import pytest
import torch

from causalsr.data.degradations import jpeg_roundtrip
from causalsr.models.block_spectrum import BlockSpectrum, dct_basis
from causalsr.models.posterior import DegradationPosterior
from helpers import photo


@pytest.fixture
def post():
    torch.manual_seed(0)
    return DegradationPosterior(scale=2, z_dim=5, n_feats=8, p_unknown=0.5)


def test_covariance_is_full_and_positive_definite(post):
    lr, hr = torch.rand(3, 3, 12, 12), torch.rand(3, 3, 24, 24)
    q = post(lr, hr)
    assert q.loc.shape == (3, 5) and q.covariance_matrix.shape == (3, 5, 5)
    assert torch.all(torch.linalg.eigvalsh(q.covariance_matrix) > 0)
    assert torch.all(torch.diagonal(q.scale_tril, dim1=-2, dim2=-1) >= post.diag_floor)
    assert torch.equal(q.scale_tril, torch.tril(q.scale_tril))


def test_off_diagonal_cholesky_entries_learn(post):
    post.eval()
    lr = torch.rand(2, 3, 10, 10)
    rows, cols = torch.tril_indices(5, 5, -1)
    before = post(lr).scale_tril[:, rows, cols].detach()
    opt = torch.optim.SGD(post.parameters(), lr=0.1)
    target = torch.eye(5) + 0.5 * torch.tril(torch.ones(5, 5), -1)
    loss = (post(lr).scale_tril - target).pow(2).sum()
    loss.backward()
    assert post.head[-1].weight.grad[2 * 5:].abs().sum() > 0
    opt.step()
    after = post(lr).scale_tril[:, rows, cols].detach()
    assert torch.all(after != 0) and not torch.allclose(before, after)


def test_rsample_is_reparameterised(post):
    q = post(torch.rand(2, 3, 8, 8))
    z = q.rsample((4,))
    assert q.has_rsample and z.requires_grad
    z.pow(2).sum().backward()
    g = post.head[-1].weight.grad.abs().sum(1)  # rows: mu (5), diag (5), strictly-lower entries (10)
    assert g[:5].gt(0).all() and g[5:10].gt(0).all() and g[10:].gt(0).all()


def test_inference_mode_odd_sizes(post):
    post.eval()
    for h, w in [(7, 9), (13, 5), (1, 1)]:
        q = post(torch.rand(1, 3, h, w))
        assert q.loc.shape == (1, 5) and torch.isfinite(q.loc).all()
    assert post.embed(torch.rand(2, 3, 11, 9)).shape == (2, post.embed_dim)


def test_odd_hr_is_cropped_top_left(post):
    post.eval()
    lr, hr = torch.rand(1, 3, 7, 9), torch.rand(1, 3, 15, 19)
    q = post(lr, hr)
    q_exact = post(lr, hr[..., :14, :18])
    assert torch.allclose(q.loc, q_exact.loc)
    with pytest.raises(ValueError):
        post(lr, hr[..., :10, :10])


def test_hr_gradients_when_known(post):
    post.eval()
    lr = torch.rand(2, 3, 9, 9)
    hr = torch.rand(2, 3, 18, 18, requires_grad=True)
    q = post(lr, hr)
    (g,) = torch.autograd.grad(q.loc.sum() + q.scale_tril.sum(), hr)
    assert g.abs().sum(dim=(1, 2, 3)).gt(0).all()
    # dropping X for one sample cuts only that sample's gradient
    q = post(lr, hr, drop_hr=torch.tensor([True, False]))
    (g,) = torch.autograd.grad(q.loc.sum(), hr)
    assert g[0].abs().sum() == 0 and g[1].abs().sum() > 0
    assert torch.allclose(q.loc[0], post(lr[:1]).loc[0], atol=1e-6)


def test_training_drop_is_random_and_seeded(post):
    post.train()
    lr, hr = torch.rand(16, 3, 6, 6), torch.rand(16, 3, 12, 12)
    a = post(lr, hr, generator=torch.Generator().manual_seed(1)).loc
    b = post(lr, hr, generator=torch.Generator().manual_seed(1)).loc
    unknown = post(lr).loc
    known = post(lr, hr, drop_hr=torch.zeros(16, dtype=torch.bool)).loc
    assert torch.equal(a, b)
    dropped = torch.isclose(a, unknown, atol=1e-6).all(1)
    kept = torch.isclose(a, known, atol=1e-6).all(1)
    assert bool((dropped | kept).all()) and 0 < int(dropped.sum()) < 16


def test_large_lr_uses_aligned_full_resolution_crops():
    torch.manual_seed(0)
    post = DegradationPosterior(scale=2, z_dim=4, n_feats=8).eval()
    lr = torch.rand(1, 3, 300, 130)
    assert post._crop_offsets(300, 128, 2) == [0, 168] and post._crop_offsets(130, 128, 2) == [0]
    crops = torch.cat([lr[..., :128, :128], lr[..., 168:296, :128]])
    expected = post.embed(crops).mean(0, keepdim=True)
    assert torch.allclose(post.embed(lr), expected, atol=1e-6)
    hr = torch.rand(1, 3, 600, 260, requires_grad=True)
    q = post(lr, hr)
    (g,) = torch.autograd.grad(q.loc.sum(), hr)
    assert g[..., :256, :256].abs().sum() > 0 and g[..., 256:336, :].abs().sum() == 0


def test_analysis_crop_averages_aligned_training_size_crops():
    torch.manual_seed(0)
    post = DegradationPosterior(scale=2, z_dim=4, n_feats=8, analysis_crop=24).eval()
    assert post._crop_offsets(24, 24, 8) == [0]
    assert post._crop_offsets(70, 24, 8) == [0, 16, 40]  # 3 crops, starts on multiples of 8, the last near the edge
    lr = torch.rand(1, 3, 24, 70)
    expected = post.embed(torch.cat([lr[..., :, x:x + 24] for x in (0, 16, 40)])).mean(0, keepdim=True)
    assert torch.allclose(post.embed(lr), expected, atol=1e-6)
    patch = torch.rand(2, 3, 24, 24)  # a training patch is analysed whole, exactly as without analysis_crop
    plain = DegradationPosterior(scale=2, z_dim=4, n_feats=8).eval()
    plain.load_state_dict(post.state_dict())
    assert torch.allclose(post.embed(patch), plain.embed(patch))
    with pytest.raises(ValueError, match="multiple of 8"):
        DegradationPosterior(analysis_crop=20)


def test_dct_basis_is_orthonormal():
    b = dct_basis(8).view(64, 64)
    assert torch.allclose(b @ b.T, torch.eye(64), atol=1e-5)
    assert torch.allclose(b[0], torch.full((64,), 1 / 8))  # DC filter = block mean * 8 / 8


def test_block_spectrum_sees_the_jpeg_grid_and_noise():
    """JPEG quantisation removes high frequencies on the aligned 8x8 grid only; noise lifts both grids."""
    rgb = photo(256, 256)
    spec = BlockSpectrum()

    def feats(img):
        f = spec(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0]
        return f[:64].view(8, 8), f[64:].view(8, 8)

    hf = (slice(4, 8), slice(4, 8))
    aligned, shifted = feats(rgb)
    assert abs(float(aligned[hf].mean() - shifted[hf].mean())) < 0.1  # no grid in a clean image
    aligned_j, shifted_j = feats(jpeg_roundtrip(rgb, 30))
    assert float(shifted_j[hf].mean() - aligned_j[hf].mean()) > 0.5  # blocking: aligned HF far weaker
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 15, rgb.shape), 0, 255).astype(np.uint8)
    aligned_n, shifted_n = feats(noisy)
    assert float(aligned_n[hf].mean() - aligned[hf].mean()) > 0.3
    assert float(shifted_n[hf].mean() - shifted[hf].mean()) > 0.3


def test_spectrum_posterior_gets_gradients_in_every_part():
    torch.manual_seed(0)
    post = DegradationPosterior(scale=2, z_dim=4, n_feats=8, spectrum=True)
    post(torch.rand(2, 3, 13, 9), torch.rand(2, 3, 26, 18)).rsample().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in post.named_parameters() if n != "unknown")


def test_lr_blocks_start_as_identity_then_learn():
    torch.manual_seed(0)
    base = DegradationPosterior(scale=2, z_dim=4, n_feats=8).eval()
    grown = DegradationPosterior(scale=2, z_dim=4, n_feats=8, lr_depth=2).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("lr_blocks.") for k in missing)
    lr, hr = torch.rand(2, 3, 12, 10), torch.rand(2, 3, 24, 20)
    a, b = base(lr, hr), grown(lr, hr)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.scale_tril, b.scale_tril)
    b.rsample().sum().backward()  # the zero-initialised output convs still get a gradient
    assert all(blk.body[2].weight.grad.abs().sum() > 0 for blk in grown.lr_blocks)
    with pytest.raises(ValueError, match="lr_depth"):
        DegradationPosterior(lr_depth=-1)
