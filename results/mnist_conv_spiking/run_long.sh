#!/usr/bin/env bash
# The same spiking convnet as run.sh (configs/mnist_conv_spiking.yaml), MNIST only, 15 epochs
# (the config's default), one run on both cores (2 torch threads).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/mnist_conv_spiking/run_long.sh
set -euo pipefail
OUT=${OUT:-runs/conv_spiking}
spiking-ep train configs/mnist_conv_spiking.yaml --set train.threads=${THREADS:-2} \
  --set train.out_dir=$OUT --set train.run_name=mnist_15ep
spiking-ep report --raw results/mnist_conv_spiking/runs $OUT/mnist_15ep \
  --title "Spiking EP, small convnet (32-64, avg pool), MNIST, 15 epochs, β = 1" \
  --out results/mnist_conv_spiking/long.md --plot results/mnist_conv_spiking/long.png
