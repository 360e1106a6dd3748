#!/usr/bin/env bash
# The schedule measurement of results/conv_schedules on the small CIFAR-10 spiking convnet at init.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/conv_schedules_cifar10/run.sh
set -euo pipefail
python benchmarks/conv_schedules.py --config configs/cifar10_small_spiking.yaml --schedules 50/25,100/50,200/100 \
  --out results/conv_schedules_cifar10
