#!/usr/bin/env bash
# The MNIST convnet recipe cut to 5 epochs (what fits one 3-hour session on one core beside a second
# run: about 18 minutes per epoch at load 2), with and without its dense hidden layer
# (configs/beat/mnist_conv.yaml, configs/beat/mnist_conv_nodense.yaml; the latter, at about 10 minutes
# per epoch, also with seed 1), one torch thread per run, JOBS at once; each followed by its inference
# sweeps; then the tables. Rerunning skips finished runs, leaves runs another invocation holds to it and
# resumes interrupted ones (see common.sh).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/beat_published/run_5ep.sh
source "$(dirname "$0")/common.sh"
run() {  # name config seed
  train_and_sweep "$1" "$2" "$3" 5,10,20,40,80 "" --set train.epochs=5
}
export -f run
printf '%s\n' "mnist_conv_5ep_seed0 configs/beat/mnist_conv.yaml 0" \
              "mnist_conv_nodense_5ep_seed0 configs/beat/mnist_conv_nodense.yaml 0" \
              "mnist_conv_nodense_5ep_seed1 configs/beat/mnist_conv_nodense.yaml 1" \
  | run_list
