#!/usr/bin/env bash
# Small CIFAR-10 convnet (32-64-128, average pooling, 4k/1k subset, 4 epochs): spiking EP
# (configs/cifar10_small_spiking.yaml: IF neurons, rate-product rule, charge rates, T1 = 100,
# T2 = 50) next to rate EP on the same average-pooling net (configs/cifar10_small.yaml with avg
# pooling, T1 = 30, T2 = 10 as in results/cifar10_small) and truncated BPTT on that rate net.
# One torch thread per run, one run after the other.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/cifar10_small_spiking/run.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/cifar10_small_spiking}
spiking-ep train configs/cifar10_small_spiking.yaml --set train.out_dir=$OUT --set train.run_name=spiking
spiking-ep train configs/cifar10_small.yaml --set model.layers.0.pool=avg --set model.layers.1.pool=avg \
  --set model.layers.2.pool=avg --set train.out_dir=$OUT --set train.run_name=rate_avg
spiking-ep train configs/cifar10_small.yaml --set model.layers.0.pool=avg --set model.layers.1.pool=avg \
  --set model.layers.2.pool=avg --set method.name=bptt --set train.out_dir=$OUT --set train.run_name=bptt_avg
spiking-ep report --raw results/cifar10_small_spiking/runs $OUT/spiking $OUT/rate_avg $OUT/bptt_avg \
  --title "Small CIFAR-10 convnet (32-64-128, avg pooling, 4k/1k subset): spiking EP vs rate EP vs BPTT" \
  --out results/cifar10_small_spiking/README.md --plot results/cifar10_small_spiking/curves.png
