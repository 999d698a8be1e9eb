#!/usr/bin/env bash
# Table V analogue for docs/benchmarks.md: CausalSR (bundled x2/x3/x4) side by side with DAT-light, SPAN,
# Real-ESRGAN x4plus and bicubic, all measured in this one run on this machine, at x2, x3 and x4 where each
# method has the scale: 1280x720 output (the paper's 720p) for FLOPs, memory and runtime; MP/s over Set5,
# fp32, all cores. Then the table in docs/benchmarks.md is regenerated from the JSON.
# Usage: benchmarks/profile.sh [extra causalsr profile options, e.g. --model runs/x4/export/causalsr_x4]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
python3 -m causalsr profile \
  --methods causalsr dat-light span realesrgan bicubic \
  --size 1280x720 --scales 2 3 4 --repeats 3 --images Set5 \
  --json "$OUT/profile.json" "$@" | tee "$OUT/profile.md"
python3 benchmarks/tables.py profile "$OUT/profile.json" --docs docs/benchmarks.md
