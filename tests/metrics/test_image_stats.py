import numpy as np

from causalsr.metrics.image_stats import blockiness, hf_energy, sharpness


def _smooth(seed=0, size=64):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (size // 8, size // 8))
    return np.kron(small, np.ones((8, 8)))  # piecewise constant on 8x8 blocks


def test_hf_energy_of_a_checkerboard_and_of_added_noise():
    checker = (np.indices((16, 16)).sum(0) % 2) * 10.0
    assert hf_energy(checker) == 40.0 ** 2  # every interior pixel: 4 * (+-10) against four -+10 neighbours
    flat = np.full((32, 32), 100.0)
    noisy = flat + np.random.default_rng(0).normal(0, 5, flat.shape)
    assert hf_energy(flat) == 0.0 and hf_energy(noisy) > hf_energy(flat)


def test_blockiness_sees_steps_on_the_block_grid_only():
    blocky = _smooth()
    assert blockiness(blocky, 8) > 100  # all variation sits on the 8-pixel grid
    shifted = np.roll(blocky, 4, axis=(0, 1))  # same steps, off the grid
    assert blockiness(shifted, 8) < 0.1
    ramp = np.add.outer(np.arange(64.0), np.arange(64.0))
    assert abs(blockiness(ramp, 8) - 1.0) < 1e-12


def test_sharpness_of_a_ramp_and_under_blur():
    ramp = np.tile(np.arange(32.0) * 3, (32, 1))
    assert abs(sharpness(ramp) - 3.0) < 1e-12
    img = _smooth(1)
    blurred = (img + np.roll(img, 1, 0) + np.roll(img, 1, 1) + np.roll(img, (1, 1), (0, 1))) / 4
    assert sharpness(blurred[2:-2, 2:-2]) < sharpness(img[2:-2, 2:-2])
