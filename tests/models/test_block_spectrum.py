"""The JPEG grid: found after any crop, absent without JPEG, and every image read from its origin."""
import numpy as np
import pytest
import torch

from causalsr.data.degradations import jpeg_roundtrip
from causalsr.models.block_spectrum import GRID_MIN_SIDE, grid_window, jpeg_grid_offset
from causalsr.models.posterior import DegradationPosterior
from helpers import photo


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("quality", [10, 50, 90])
@pytest.mark.parametrize("crop", [(0, 0), (3, 5), (7, 1), (4, 4)])
def test_grid_is_found_after_a_crop(quality, crop):
    """Cropping dy rows and dx columns off a JPEG moves its grid origin to ((8 - dy) % 8, (8 - dx) % 8)."""
    jpeg = jpeg_roundtrip(photo(160, 144), quality)
    offset = jpeg_grid_offset(_tensor(jpeg[crop[0]:, crop[1]:]))
    assert offset.tolist() == [[(8 - crop[0]) % 8, (8 - crop[1]) % 8]]


def test_no_grid_without_jpeg():
    rgb = photo(160, 144)
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 10, rgb.shape), 0, 255).astype(np.uint8)
    for img in (rgb[3:, 5:], noisy[1:, 6:]):
        assert jpeg_grid_offset(_tensor(img)).tolist() == [[0, 0]]


def test_small_images_keep_the_zero_grid():
    jpeg = jpeg_roundtrip(photo(64, 64), 20)[3:3 + GRID_MIN_SIDE - 1, 5:5 + GRID_MIN_SIDE - 1]
    assert jpeg_grid_offset(_tensor(jpeg)).tolist() == [[0, 0]]


def test_grid_window_slices_each_image_from_its_offset():
    img = torch.rand(3, 2, 40, 48)
    offset = torch.tensor([[0, 0], [3, 5], [7, 7]])
    win = grid_window(img, offset)
    assert win.shape == (3, 2, 33, 41)
    for i, (dy, dx) in enumerate(offset.tolist()):
        assert torch.equal(win[i], img[i, :, dy:dy + 33, dx:dx + 41])
    hr = torch.rand(3, 2, 80, 96)  # scale 2: the HR window starts at twice the offset, 2 * 7 px smaller
    assert torch.equal(grid_window(hr, offset, 2)[1], hr[1, :, 6:6 + 66, 10:10 + 82])
    small = torch.rand(1, 3, GRID_MIN_SIDE - 1, 40)
    assert torch.equal(grid_window(small, torch.zeros(1, 2, dtype=torch.long)), small)


def test_a_cropped_jpeg_reads_as_the_aligned_one():
    """With grid_align a JPEG cropped off its grid is read from the same pixels as the JPEG on its grid."""
    torch.manual_seed(0)
    post = DegradationPosterior(scale=2, z_dim=4, n_feats=8, spectrum=True, analysis_crop=16, grid_align=True).eval()
    jpeg = jpeg_roundtrip(photo(136, 136), 30)
    aligned = _tensor(jpeg[8:8 + 96, 8:8 + 96])  # on the grid: offset (0, 0), read from jpeg[8, 8]
    cropped = _tensor(jpeg[5:5 + 96, 3:3 + 96])  # offset (3, 5): also read from jpeg[8, 8]
    with torch.no_grad():
        assert torch.equal(post(aligned).mean, post(cropped).mean)
        post.grid_align = False
        unaligned = post(cropped).mean
        assert not torch.allclose(post(aligned).mean, unaligned, atol=1e-3)
        post.grid_align = True
        post.train()  # training patches are on their grid: no search, read from pixel (0, 0)
        assert torch.equal(post(cropped, drop_hr=None).mean, unaligned)


def test_traced_grid_window_matches_eager_at_another_size():
    def read(x):
        return grid_window(x, jpeg_grid_offset(x))

    traced = torch.jit.trace(read, _tensor(jpeg_roundtrip(photo(64, 64), 40)))
    other = _tensor(jpeg_roundtrip(photo(120, 88), 40)[2:, 6:])
    assert torch.equal(traced(other), read(other))
    tiny = torch.rand(1, 3, 20, 24)
    assert torch.equal(traced(tiny), tiny)
