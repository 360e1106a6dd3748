#!/usr/bin/env bash
# Spiking EP convnets against the best published spiking EP results (Lin, Bal & Sengupta 2024):
# configs/beat/mnist_conv.yaml and configs/beat/fashion_conv.yaml, seeds 0 and 1, one torch thread
# per run, JOBS runs at a time (default 2: one per core). Interrupted? Run it again: finished runs are
# skipped, the others resume from their checkpoints. Then the inference sweeps (test error and
# synaptic operations vs steps, training and NIR-exact neuron profiles) and the tables.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run.sh
set -euo pipefail
OUT=${OUT:-runs/beat_published}
JOBS=${JOBS:-2}
HERE=results/beat_published
mkdir -p "$OUT"
run() {  # name config seed
  if [ -f "$OUT/$1/summary.json" ]; then return; fi
  if [ -f "$OUT/$1/checkpoint.pt" ]; then spiking-ep train --resume "$OUT/$1" > "$OUT/$1.log" 2>&1
  else spiking-ep train "$2" --set train.seed=$3 --set train.out_dir=$OUT --set train.run_name=$1 > "$OUT/$1.log" 2>&1; fi
}
export -f run; export OUT
printf '%s\n' "mnist_conv_seed0 configs/beat/mnist_conv.yaml 0" "fashion_conv_seed0 configs/beat/fashion_conv.yaml 0" \
              "mnist_conv_seed1 configs/beat/mnist_conv.yaml 1" "fashion_conv_seed1 configs/beat/fashion_conv.yaml 1" \
  | xargs -P "$JOBS" -L 1 bash -c 'run "$@"' _
NIR="--set spiking.reset=zero --set spiking.v_floor=null --set spiking.v_ceiling=null --set spiking.rate_estimate=count --set method.mode=forward"
for r in mnist_conv_seed0 fashion_conv_seed0; do
  spiking-ep evaluate "$OUT/$r" --steps 5,10,20,40,80 --json > "$OUT/$r.steps.json"
  spiking-ep evaluate "$OUT/$r" --steps 5,10,20,40,80 $NIR --json > "$OUT/$r.steps_nir.json"
done
python $HERE/table.py "$OUT" > $HERE/README.md
