#!/usr/bin/env bash
# The 15-epoch spiking-trained convnet (run_long.sh) run as a RATE network (σ = clamp(u/θ, 0, 1),
# even/odd as in training): test error vs free-phase steps.
# Usage (from the repo root, after run_long.sh): SPIKING_EP_DATA=../shared/data bash results/mnist_conv_spiking/as_rate.sh
set -euo pipefail
OUT=${OUT:-runs/conv_spiking}
R=results/mnist_conv_spiking
spiking-ep evaluate $OUT/mnist_15ep/config.yaml --weights $OUT/mnist_15ep --set model.kind=rate \
  --set train.threads=${THREADS:-2} --steps 10,20,40,80,200 --out $R/as_rate_mnist_15ep.md --plot $R/as_rate_mnist_15ep.png
