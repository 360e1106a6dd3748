#!/usr/bin/env bash
# Unidirectional (vector-field) EP on the small CIFAR-10 preset: new rule vs old rule, same network,
# data and seed; the report table lists the last-epoch W–B angles and the plot their curves.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/vf_small/run.sh
# Each run: 4 epochs on the 4k/1k subset; on a shared 2-core CPU a batch of 128 takes ~15–30 s
# (the old rule costs one extra vector–Jacobian product), so budget a few hours for both.
set -euo pipefail
OUT=${OUT:-runs/vf_small}
for rule in new old; do
  spiking-ep train configs/cifar10_small_vf_$rule.yaml \
    --set train.out_dir=$OUT --set train.run_name=vf_$rule
done
spiking-ep report --raw results/vf_small/runs $OUT/vf_new $OUT/vf_old \
  --title "Small CIFAR-10 convnet (32-64-128, 4k/1k subset), unidirectional: new vs old vector-field rule" \
  --out results/vf_small/README.md --plot results/vf_small/curves.png
