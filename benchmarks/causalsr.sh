#!/usr/bin/env bash
# Reproduce the CausalSR rows of docs/benchmarks.md: the bundled models (or MODEL_DIR/causalsr_x{s}
# exports) on the benchmark sets, clean bicubic LR and the paper's degradation presets.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/benchmarks}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
model() { if [ -n "${MODEL_DIR:-}" ]; then echo "$MODEL_DIR/causalsr_x$1"; else echo causalsr; fi; }
$PY -m causalsr eval --method "$(model 4)" --datasets Set5 Set14 BSD100 Urban100 Manga109 --scales 4 \
  --json "$OUT/causalsr_x4.json"
for s in 2 3; do
  $PY -m causalsr eval --method "$(model $s)" --datasets Set5 Set14 BSD100 --scales $s --json "$OUT/causalsr_x$s.json"
done
# Degraded inputs (blur 3x3 sigma 2, noise 15, JPEG 30 and their combination) at x4, beside bicubic.
for d in blur noise jpeg blur+noise+jpeg; do
  for m in "$(model 4)" bicubic; do
    $PY -m causalsr eval --method "$m" --datasets Set5 Set14 --scales 4 --degradation "$d" \
      --json "$OUT/degraded_$(basename "$m")_${d//+/-}.json"
  done
done
