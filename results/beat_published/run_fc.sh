#!/usr/bin/env bash
# Deep fully connected spiking network on MNIST (configs/beat/mnist_fc_deep.yaml, 784-512-512 +
# readout): STDP rule, rate-product rule and rate EP on the same network, one thread each, JOBS at a
# time. Resumable like run.sh; then the tables (results/beat_published/table.py).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run_fc.sh
set -euo pipefail
OUT=${OUT:-runs/beat_published}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
run() {  # name seed overrides...
  name=$1; seed=$2; shift 2
  if [ -f "$OUT/$name/summary.json" ]; then return; fi
  if [ -f "$OUT/$name/checkpoint.pt" ]; then spiking-ep train --resume "$OUT/$name" > "$OUT/$name.log" 2>&1
  else spiking-ep train configs/beat/mnist_fc_deep.yaml --set train.seed=$seed --set train.out_dir=$OUT \
         --set train.run_name=$name "$@" > "$OUT/$name.log" 2>&1; fi
}
export -f run; export OUT
printf '%s\n' "fc_stdp_seed0 0" "fc_rates_seed0 0 --set spiking.rule=rates" \
              "fc_rate_ep_seed0 0 --set model.kind=rate --set method.tol=1.0e-3 --set method.eval_T1=40" \
  | xargs -P "$JOBS" -L 1 bash -c 'run "$@"' _
python results/beat_published/table.py "$OUT" > results/beat_published/README.md
