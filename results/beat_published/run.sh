#!/usr/bin/env bash
# Spiking EP convnets against the best published spiking EP results (Lin, Bal & Sengupta 2024):
# configs/beat/mnist_conv.yaml and configs/beat/fashion_conv.yaml, seeds 0 and 1, one torch thread
# per run, JOBS runs at a time (default 2: one per core), each followed by its inference sweeps (test
# error and synaptic operations vs steps, training and NIR-exact neuron profiles); then the tables.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoints, and a
# run another invocation is training (its lock held) is left to it.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run.sh
set -euo pipefail
OUT=${OUT:-runs/beat_published}
JOBS=${JOBS:-2}
HERE=results/beat_published
mkdir -p "$OUT"
NIR="--set spiking.reset=zero --set spiking.v_floor=null --set spiking.v_ceiling=null --set spiking.rate_estimate=count --set method.mode=forward"
run() {  # name config seed; a lock per run, so that several invocations (one per core or session) share the list
  (
    flock -n 9 || exit 0
    if [ ! -f "$OUT/$1/summary.json" ]; then
      if [ -f "$OUT/$1/checkpoint.pt" ]; then spiking-ep train --resume "$OUT/$1" > "$OUT/$1.log" 2>&1
      else spiking-ep train "$2" --set train.seed=$3 --set train.out_dir=$OUT --set train.run_name=$1 > "$OUT/$1.log" 2>&1; fi
    fi
    [ -f "$OUT/$1/summary.json" ] || exit 1   # training failed: its log says why
    # inference cost of each finished run: test error and synaptic operations vs steps, in the
    # training and the NIR-exact neuron profiles
    [ -f "$OUT/$1.steps.json" ] || spiking-ep evaluate "$OUT/$1" --steps 5,10,20,40,80 --json > "$OUT/$1.steps.json"
    [ -f "$OUT/$1.steps_nir.json" ] || spiking-ep evaluate "$OUT/$1" --steps 5,10,20,40,80 $NIR --json > "$OUT/$1.steps_nir.json"
  ) 9> "$OUT/$1.lock"
}
export -f run; export OUT NIR
printf '%s\n' "mnist_conv_seed0 configs/beat/mnist_conv.yaml 0" "fashion_conv_seed0 configs/beat/fashion_conv.yaml 0" \
              "mnist_conv_seed1 configs/beat/mnist_conv.yaml 1" "fashion_conv_seed1 configs/beat/fashion_conv.yaml 1" \
  | xargs -P "$JOBS" -L 1 bash -c 'run "$@"' _
python $HERE/table.py "$OUT" > $HERE/README.md
