#!/usr/bin/env bash
# Quick end-to-end comparison on MNIST (configs/compare/mnist.yaml: conv 16-32, 10,000 training
# digits, the full test set, 3 epochs), all five arms in one process on one core.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/compare_mnist/run.sh
set -euo pipefail
OUT=${OUT:-runs/compare_mnist}
spiking-ep compare configs/compare/mnist.yaml --out "$OUT" --results results/compare_mnist \
  --title "MNIST quick check: spiking EP vs rate EP vs BPTT on one small convnet"
