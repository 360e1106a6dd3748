#!/usr/bin/env bash
# How the EP estimates' distance to BPTT changes with β on real images, max vs average pooling:
# the GDU check (16 CIFAR-10 training images, float64, untrained small preset, T1 = 400) for
# β = 1, 0.5, 0.2, 0.1, 0.05, 0.02; table (beta_sweep.md) made by beta_sweep.py from the checks'
# gdu_table.csv. Theory: one-sided error O(β), symmetric O(β²) — but only where the dynamics are
# smooth; a max-pooling argmax switch is an O(1) jump that EP divides by β.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/gdu_small/beta_sweep.sh
set -euo pipefail
R=results/gdu_small/beta_sweep
AVG=(--set model.layers.0.pool=avg --set model.layers.1.pool=avg --set model.layers.2.pool=avg)
for b in 1 0.5 0.2 0.1 0.05 0.02; do
  [ -f $R/max_beta$b/gdu_table.csv ] || spiking-ep gdu configs/cifar10_small.yaml --n-images 16 --set method.T1=400 --beta $b --out $R/max_beta$b
  [ -f $R/avg_beta$b/gdu_table.csv ] || spiking-ep gdu configs/cifar10_small.yaml --n-images 16 --set method.T1=400 --beta $b --out $R/avg_beta$b "${AVG[@]}"
done
python results/gdu_small/beta_sweep.py $R > results/gdu_small/beta_sweep.md
