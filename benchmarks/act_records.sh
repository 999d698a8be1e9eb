#!/usr/bin/env bash
# Re-measure issue 13's records of one model (default: the bundled x4) into benchmarks/results/:
# blind and oracle restoration, --do responses, the effect of do(noise), liveness, and what analyze reads.
# MODEL=path/to/model ./benchmarks/act_records.sh ; GRID=1 also reruns issue 17's analyze grid on GRID_IMAGES
# images per set (default 25; about 45 min on 2 shared cores).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-x4}
R=benchmarks/results
PY=${PYTHON:-python3}
CLI="$PY -m causalsr"
METHOD=$([ "$MODEL" = x4 ] && echo causalsr || echo "$MODEL")  # eval names the bundled models "causalsr"
$CLI eval --method "$METHOD" --datasets Set5 Set14 --scales 4 --degradation bicubic noise:15 jpeg:30 \
  gblur:1.5 gblur:1.5+noise:10+jpeg:50 blur+noise+jpeg --condition blind --metrics psnr ssim --grey-convention basicsr \
  --json $R/act_x4_blind.json
$CLI eval --method "$METHOD" --datasets Set5 Set14 --scales 4 --degradation noise:15 jpeg:30 gblur:1.5 \
  gblur:1.5+noise:10+jpeg:50 --condition oracle --metrics psnr ssim --grey-convention basicsr --json $R/act_x4_oracle.json
for set in Set5 Set14; do
  $PY benchmarks/do_response.py --model "$MODEL" --dataset $set --degradation noise:15 --factor noise \
    --values 0 5 10 15 20 30 --json $R/do_noise_${set}_x4.json
  $PY benchmarks/do_response.py --model "$MODEL" --dataset $set --degradation jpeg:30 --factor jpeg \
    --values 10 20 30 50 70 90 --json $R/do_jpeg_${set}_x4.json
  $PY benchmarks/do_response.py --model "$MODEL" --dataset $set --degradation gblur:1.5 --factor blur \
    --values 0 0.5 1 1.5 2 3 --json $R/do_blur_${set}_x4.json
done
# the paper's 3x3 blur preset (a sigma-0.80 Gaussian in effect): where does told blur peak on it?
$PY benchmarks/do_response.py --model "$MODEL" --dataset Set5 --degradation blur --factor blur \
  --values 0 0.5 0.8 1 1.5 2 3 --json $R/do_blurpreset_Set5_x4.json
MODEL_OPT=(); [ "$MODEL" = x4 ] || MODEL_OPT=(--model "$MODEL")
$CLI effects "${MODEL_OPT[@]}" --datasets Set5 --scales 4 --treatment noise=0:15 --json $R/effects_act_x4_noise.json
$CLI inspect "$MODEL" --json $R/inspect_x4.json || true  # a failing part is recorded, not fatal
$PY benchmarks/analyze_accuracy.py --model "$MODEL" --datasets Set14 --gaussian-blur 1 2 3 --json $R/analyze_set14_x4_act.json
if [ -n "${GRID:-}" ]; then
  $PY benchmarks/analyze_accuracy.py --grid --model "$MODEL" --images "${GRID_IMAGES:-25}" --json $R/analyze_accuracy_x4.json
fi
