#!/usr/bin/env bash
# Small spiking convnet (conv 32-64, average pooling, IF neurons, rate-product rule, charge rate
# estimate, even/odd schedule, T1 = 40, T2 = 20, β = 1), 6 epochs, on MNIST and on Fashion-MNIST
# (Debian: apt-get install dataset-fashion-mnist). One torch thread per run, both runs side by side.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/mnist_conv_spiking/run.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/conv_spiking}
C=configs/mnist_conv_spiking.yaml
spiking-ep train $C --set train.epochs=6 --set train.out_dir=$OUT --set train.run_name=mnist &
spiking-ep train $C --set train.epochs=6 --set data.name=fashion_mnist --set train.out_dir=$OUT --set train.run_name=fashion_mnist &
wait
spiking-ep report --raw results/mnist_conv_spiking/runs $OUT/mnist $OUT/fashion_mnist \
  --title "Spiking EP, small convnet (32-64, avg pool), MNIST and Fashion-MNIST, 6 epochs, β = 1" \
  --out results/mnist_conv_spiking/README.md --plot results/mnist_conv_spiking/curves.png
