#!/usr/bin/env bash
# Reproduce the peer rows of docs/benchmarks.md: DAT-light and SPAN (ch48), basicsr grey convention.
# Needs the no-deps peer packages (scripts/setup.sh). Slow on CPU (DAT-light ~0.2 output MP/s at x4):
#   nohup nice -n 10 benchmarks/peers.sh > peers.log 2>&1 &
# One JSON per run under $OUT (default outputs/benchmarks), so an interrupted run keeps what it finished.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/benchmarks}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
run() {  # method scale dataset...
  local method=$1 scale=$2; shift 2
  for d in "$@"; do
    $PY -m causalsr eval --method "$method" --datasets "$d" --scales "$scale" \
      --grey-convention basicsr --json "$OUT/$method-x$scale-$d.json"
  done
}
run span 4 Set5 Set14 BSD100 Urban100 Manga109
run span 2 Set5 Set14 BSD100
run dat-light 4 Set5 Set14 BSD100
run dat-light 2 Set5 Set14 BSD100
run dat-light 4 Manga109 Urban100
