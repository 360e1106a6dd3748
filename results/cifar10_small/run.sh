#!/usr/bin/env bash
# Small CIFAR-10 preset: symmetric EP vs one-sided EP vs truncated BPTT, same network and seed.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/cifar10_small/run.sh
set -euo pipefail
OUT=${OUT:-runs/cifar10_small}
for m in symmetric one_sided; do
  spiking-ep train configs/cifar10_small.yaml --set method.estimator=$m \
    --set train.out_dir=$OUT --set train.run_name=ep_$m
done
spiking-ep train configs/cifar10_small.yaml --set method.name=bptt \
  --set train.out_dir=$OUT --set train.run_name=bptt
spiking-ep report --raw results/cifar10_small/runs $OUT/ep_symmetric $OUT/ep_one_sided $OUT/bptt \
  --title "Small CIFAR-10 convnet (32-64-128, 4k/1k subset): symmetric vs one-sided EP vs BPTT" \
  --out results/cifar10_small/README.md --plot results/cifar10_small/curves.png
