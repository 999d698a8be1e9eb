#!/usr/bin/env bash
# Table V analogue for docs/benchmarks.md: CausalSR (bundled x2/x3/x4) side by side with
# DAT-light, SPAN and bicubic, all measured in this one run on this machine.
# Output-size 1280x720 (the paper's 720p), x4 for FLOPs/memory/MP/s, MP/s over Set5 at fp32 on all cores.
# Usage: benchmarks/profile.sh [extra causalsr profile options, e.g. --model runs/x4/export/causalsr_x4]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
python3 -m causalsr profile \
  --methods causalsr dat-light span bicubic \
  --size 1280x720 --scale 4 --repeats 5 --images Set5 \
  --json "$OUT/profile.json" "$@" | tee "$OUT/profile.md"
