#!/usr/bin/env bash
# Reproduce the bicubic rows of docs/benchmarks.md (MATLAB grey convention, as the published RCAN row).
# Manga109 here is the 10-image subset shipped in shared/data. About 2 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/benchmarks}
mkdir -p "$OUT"
${PYTHON:-python3} -m causalsr eval --method bicubic --datasets Set5 Set14 BSD100 Urban100 Manga109 \
  --scales 2 3 4 8 --grey-convention matlab --json "$OUT/bicubic.json"
