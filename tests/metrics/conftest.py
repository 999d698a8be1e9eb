"""The metric-calibration pairs of the data folder (the test skips when they are absent)."""
import pytest

from helpers import dataset_dir


@pytest.fixture(scope="session")
def calibration_dir():
    return dataset_dir("iqa-calibration")
