#!/usr/bin/env bash
# Short spiking schedules on the MNIST spiking convnet at init: update cosine with rate EP and cost
# (benchmarks/conv_schedules.py). Run on a quiet machine (it also times the schedules).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/conv_schedules/run.sh
set -euo pipefail
python benchmarks/conv_schedules.py --out results/conv_schedules
