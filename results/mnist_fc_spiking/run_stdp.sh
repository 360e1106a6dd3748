#!/usr/bin/env bash
# The STDP rule costs more per batch than the rate-product rule on the CPU (it accumulates
# coincidences every step of both nudged windows; 1.35× the rates rule's time in README_3ep.md,
# 2.0–2.5× before its accumulation was batched), so it was run for 3 epochs;
# rate EP and the rate-product spiking rule are run with the same 3-epoch schedule beside it.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/mnist_fc_spiking/run_stdp.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/mnist_fc_spiking}
C=configs/mnist_fc_spiking.yaml
spiking-ep train $C --set spiking.rule=stdp --set train.epochs=3 --set train.out_dir=$OUT --set train.run_name=spiking_stdp_3ep
spiking-ep train $C --set spiking.rule=rates --set train.epochs=3 --set train.out_dir=$OUT --set train.run_name=spiking_rates_3ep
spiking-ep train $C --set model.kind=rate --set method.T1=10 --set method.T2=10 --set train.epochs=3 \
  --set train.out_dir=$OUT --set train.run_name=rate_ep_3ep
spiking-ep report --raw results/mnist_fc_spiking/runs $OUT/rate_ep_3ep $OUT/spiking_rates_3ep $OUT/spiking_stdp_3ep \
  --title "MNIST 784-512-10: spiking EP, STDP vs rate-product rule vs rate EP, 3 epochs, β = 1" \
  --out results/mnist_fc_spiking/README_3ep.md --plot results/mnist_fc_spiking/curves_3ep.png
