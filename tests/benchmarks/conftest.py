"""Tests of the scripts in benchmarks/: that folder is not a package, so it goes on sys.path.

The scripts import each other by module name (`from classical_estimators import ...`), as they do
when run as `python3 benchmarks/<script>.py`; the tests import them the same way.
"""
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
