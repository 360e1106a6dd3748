#!/usr/bin/env bash
# MNIST 784-512 + softmax readout: symmetric EP (30 epochs) and truncated BPTT on the same net.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/mnist_fc/run.sh
set -euo pipefail
OUT=${OUT:-runs/mnist_fc}
spiking-ep train configs/mnist_fc.yaml --set train.out_dir=$OUT --set train.run_name=ep_symmetric
spiking-ep train configs/mnist_fc_bptt.yaml --set train.out_dir=$OUT --set train.run_name=bptt
spiking-ep report --raw results/mnist_fc/runs $OUT/ep_symmetric $OUT/bptt \
  --title "MNIST 784-512-10 (softmax readout): symmetric EP vs truncated BPTT" \
  --out results/mnist_fc/README.md --plot results/mnist_fc/curves.png
