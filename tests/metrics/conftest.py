"""The shared metric-calibration pairs (skip when the shared data folder is absent)."""
import pytest


@pytest.fixture(scope="session")
def calibration_dir():
    from causalsr.data.datasets import benchmark_root

    try:
        folder = benchmark_root().parent / "iqa-calibration"
    except FileNotFoundError as e:
        pytest.skip(str(e))
    if not folder.is_dir():
        pytest.skip(f"{folder}: calibration pairs not installed")
    return folder
