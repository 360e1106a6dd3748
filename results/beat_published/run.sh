#!/usr/bin/env bash
# Spiking EP convnets against the best published spiking EP results (Lin, Bal & Sengupta 2024):
# configs/beat/mnist_conv.yaml and configs/beat/fashion_conv.yaml, seeds 0 and 1, one torch thread
# per run, JOBS runs at a time (default 2: one per core), each followed by its inference sweeps (test
# error and synaptic operations vs steps, training and NIR-exact neuron profiles); then the tables.
# Interrupted? Run it again: finished runs are skipped, the others resume from their checkpoints, and a
# run another invocation is training (its lock held) is left to it.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run.sh
source "$(dirname "$0")/common.sh"
run() {  # name config seed
  train_and_sweep "$1" "$2" "$3" 5,10,20,40,80 ""
}
export -f run
printf '%s\n' "mnist_conv_seed0 configs/beat/mnist_conv.yaml 0" "fashion_conv_seed0 configs/beat/fashion_conv.yaml 0" \
              "mnist_conv_seed1 configs/beat/mnist_conv.yaml 1" "fashion_conv_seed1 configs/beat/fashion_conv.yaml 1" \
  | run_list
