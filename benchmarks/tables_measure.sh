#!/usr/bin/env bash
# The records behind Tables II and III of docs/benchmarks.md (issue 16), one `causalsr eval` JSON per
# (method, scale, dataset) in Table II and per (method, scale, dataset, degradation) in Table III; a record
# already there is kept (rerun to fill what is missing; Table II also counts benchmarks/results/peers/).
#   benchmarks/tables_measure.sh table2   # bicubic degradation: Set5 Set14 BSD100 Urban100 Manga109, x2 x3 x4
#   benchmarks/tables_measure.sh table3   # Set14 BSD100 Urban100 with blur, noise, jpeg, blur+noise+jpeg, + LPIPS
# then: python3 benchmarks/tables.py table2 --docs docs/benchmarks.md   (likewise table3)
# Filters: METHODS, SCALES, DATASETS (space-separated); DRY=1 lists the runs and writes the skip notes only. "causalsr" is the bundled x2/x3/x4 (the commit is in
# each record). Single-threaded (OMP_NUM_THREADS=1), one process at a time. Runs of the slow peers (DAT-light,
# Real-ESRGAN) estimated at over ~15 minutes on this CPU (see minutes) are skipped, and the tables say so.
set -uo pipefail
cd "$(dirname "$0")/.."
TABLE=${1:?usage: tables_measure.sh table2|table3}
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results/$TABLE}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
case $TABLE in
  table2) DEFAULT_SETS="Set5 Set14 BSD100 Urban100 Manga109"; DEGS=(bicubic); METRICS=(psnr ssim)
          DEFAULT_METHODS="bicubic causalsr causalsr-told span dat-light" ;;
  table3) DEFAULT_SETS="Set14 BSD100 Urban100"; DEGS=(blur noise jpeg blur+noise+jpeg); METRICS=(psnr ssim lpips)
          DEFAULT_METHODS="bicubic causalsr span realesrgan dat-light" ;;
  *) echo "unknown table $TABLE"; exit 2 ;;
esac

has_scale() {  # method scale
  case $1 in span) [[ $2 != 3 ]] ;; realesrgan) [[ $2 == 4 ]] ;; *) true ;; esac
}

minutes() {  # method scale dataset -> estimated minutes of one degradation, single-threaded, for the slow peers
  # output MP of each set; single-thread output MP/s measured here: DAT-light x2 BSD100 took 20 min on 2
  # threads (0.0064 MP/s on one), x3 0.034, x4 0.107 (profile: 0.068 / 0.215 on 2 threads); Real-ESRGAN x4
  # 0.039 (Set5 woman, 0.078 MP in 2.0 s)
  awk -v m="$1" -v s="$2" -v d="$3" 'BEGIN {
    mp["Set5"] = 0.57; mp["Set14"] = 3.22; mp["BSD100"] = 15.44; mp["Urban100"] = 77.43; mp["Manga109"] = 9.68
    r["dat-light-2"] = 0.0064; r["dat-light-3"] = 0.034; r["dat-light-4"] = 0.107; r["realesrgan-4"] = 0.039
    rate = r[m "-" s]; print (rate ? mp[d] / rate / 60 : 0) }'
}

for method in ${METHODS:-$DEFAULT_METHODS}; do
  for s in ${SCALES:-4 2 3}; do
    has_scale "$method" "$s" || continue
    for d in ${DATASETS:-$DEFAULT_SETS}; do
      est=$(minutes "$method" "$s" "$d")
      for deg in "${DEGS[@]}"; do
        f=$OUT/$method-x$s-$d$([ "$TABLE" = table3 ] && echo "-${deg//+/-}").json
        if [ -f "$f" ] || { [ "$TABLE" = table2 ] && [ -f "benchmarks/results/peers/$method-x$s-$d.json" ]; }; then
          continue
        fi
        if awk -v e="$est" 'BEGIN { exit !(e > 15) }'; then
          echo "about $(printf %.0f "$est") min single-threaded here, over the ~15 min limit" > "${f%.json}.skipped"
          echo "skip $method x$s $d $deg (about $est min)"; continue
        fi
        echo "$(date -u +%H:%M:%S) $method x$s $d $deg"
        [ "${DRY:-0}" = 1 ] && continue  # DRY=1: list the runs and write the skip notes, run nothing
        # causalsr-told: ours told the true factors of the input (clean, for Table II's bicubic LR) instead of
        # reading them from the posterior
        "$PY" -m causalsr eval --method "${method%-told}" --datasets "$d" --scales "$s" --degradation "$deg" \
          $([ "$method" = causalsr-told ] && echo --condition oracle) \
          --metrics "${METRICS[@]}" --grey-convention basicsr --device cpu --json "$f" > /dev/null \
          || echo "failed: $method x$s $d $deg"
      done
    done
  done
done
