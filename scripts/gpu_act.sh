#!/usr/bin/env bash
# One GPU window of issue 13's recipe (configs/gpu-act.yaml): x4, x3 and x2 trained side by side,
# each warm-started from its bundled model, for $MINUTES minutes; one tar per scale lands in $OUT
# (export/ + train_log.csv + val_log.csv), and each run's console log beside it.
# Carried (ignored) inputs: .whl/ (the EfficientNet-Lite0 wheels), .gpu/data/train/{T91,BSD200},
# .gpu/data/benchmarks/Set5/HR, and .gpu/src (a snapshot of causalsr/ + configs/ to run).
set -uo pipefail
MINUTES=${MINUTES:-7}
OUT=${OUT:-/tmp/gpu_act_out}
SRC=${SRC:-.gpu/src}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$SRC
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
for s in ${SCALES:-4 3 2}; do
  # shellcheck disable=SC2086  # EXTRA holds several --set options
  python3 -m causalsr train --config "$SRC/configs/gpu-act.yaml" --set model.scale="$s" \
    --set run.init_from=causalsr/weights/x"$s" \
    --set "data.train_roots=[.gpu/data/train/T91,.gpu/data/train/BSD200]" \
    --set run.val_dataset=.gpu/data/benchmarks/Set5/HR --set run.time_limit_minutes="$MINUTES" ${EXTRA:-} \
    -o /tmp/gpu_act_x"$s" > "$OUT/log_x$s.txt" 2>&1 &
done
wait
for s in ${SCALES:-4 3 2}; do
  tar -C /tmp/gpu_act_x"$s" -cf "$OUT/run_x$s.tar" export train_log.csv val_log.csv
  grep -a "val \|stopped\|Error" "$OUT/log_x$s.txt" | tail -4
done
