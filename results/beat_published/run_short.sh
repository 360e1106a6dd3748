#!/usr/bin/env bash
# The session-sized MNIST convnet (configs/beat/mnist_conv_short.yaml: T1 = 20, T2 = 12, 9 epochs),
# seeds 0 and 1, one torch thread per run, JOBS runs at a time (default 2: one per core), each followed
# by its inference sweeps (training and NIR-exact neuron profiles); then the tables. Rerunning skips
# finished runs and resumes interrupted ones (see common.sh).
# Outcome (2026-12-07): it did not learn — 12.3 / 14.4 % test error after epoch 1 and 36.5 / 13.7 % after
# epoch 2 (seeds 0 / 1); both runs were stopped (results/beat_published/stopped/). Kept as the record of those runs.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run_short.sh
source "$(dirname "$0")/common.sh"
run() {  # name config seed
  train_and_sweep "$1" "$2" "$3" 5,10,20,40,80 ""
}
export -f run
printf '%s\n' "mnist_conv_short_seed0 configs/beat/mnist_conv_short.yaml 0" \
              "mnist_conv_short_seed1 configs/beat/mnist_conv_short.yaml 1" \
  | run_list
