#!/usr/bin/env bash
# MNIST 784-512 + softmax readout, 10 epochs, β = 1: spiking EP with the rate-product rule against
# rate EP on the same architecture, schedule and β (the STDP rule: run_stdp.sh).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/mnist_fc_spiking/run.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/mnist_fc_spiking}
C=configs/mnist_fc_spiking.yaml
spiking-ep train $C --set model.kind=rate --set method.T1=10 --set method.T2=10 \
  --set train.out_dir=$OUT --set train.run_name=rate_ep
spiking-ep train $C --set spiking.rule=rates --set train.out_dir=$OUT --set train.run_name=spiking_rates
spiking-ep report --raw results/mnist_fc_spiking/runs $OUT/rate_ep $OUT/spiking_rates  \
  --title "MNIST 784-512-10: spiking EP (rate-product rule) vs rate EP, 10 epochs, β = 1" \
  --out results/mnist_fc_spiking/README.md --plot results/mnist_fc_spiking/curves.png
