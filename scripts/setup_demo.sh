#!/usr/bin/env bash
# The web demo's environment (extra `demo`: gradio) plus Playwright for its browser test, in a venv of its own.
# Why a venv: gradio needs Pillow < 13, and the main environment (scripts/setup.sh) keeps the Pillow its tests
# ran with. The venv sees the main environment's packages (torch, numpy, ...) and installs only what differs.
# Run scripts/setup.sh first. Prints the venv's python (its only output on stdout); pip's chatter goes to stderr.
# The browser itself is the system's Chromium (Debian: apt-get install chromium); Playwright downloads none.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${CAUSALSR_DEMO_VENV:-$HOME/.cache/causalsr/demo-venv}
if [ ! -x "$VENV/bin/python" ]; then
  $PY -m venv --system-site-packages "$VENV" >&2
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -c constraints.txt -e ".[demo]" playwright >&2
echo "$VENV/bin/python"
