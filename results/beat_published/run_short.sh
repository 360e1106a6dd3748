#!/usr/bin/env bash
# The session-sized convnets (configs/beat/{mnist,fashion}_conv_short.yaml: T1 = 20, T2 = 12, 9 epochs,
# about 2 hours per run on one core at load 2), seeds 0 and 1 of each data set named (default: mnist),
# one torch thread per run, JOBS runs at a time (default 2: one per core), each followed by its
# inference sweeps (training and NIR-exact neuron profiles); then the tables. Rerunning skips finished
# runs and resumes interrupted ones (see common.sh).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run_short.sh [mnist] [fashion]
set -euo pipefail
OUT=${OUT:-runs/beat_published}
JOBS=${JOBS:-2}
HERE=results/beat_published
mkdir -p "$OUT"
source "$(dirname "$0")/common.sh"
run() {  # name config seed
  train_and_sweep "$1" "$2" "$3" 5,10,20,40,80 ""
}
export -f run; export OUT
for data in "${@:-mnist}"; do
  [ -f "configs/beat/${data}_conv_short.yaml" ] || { echo "no configs/beat/${data}_conv_short.yaml (data sets: mnist, fashion)" >&2; exit 2; }
  for seed in 0 1; do echo "${data}_conv_short_seed$seed configs/beat/${data}_conv_short.yaml $seed"; done
done | xargs -P "$JOBS" -L 1 bash -c 'run "$@"' _
python $HERE/table.py "$OUT" > $HERE/README.md
