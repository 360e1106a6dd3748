#!/usr/bin/env bash
# Test error, spikes and synaptic operations vs inference time steps for the two spiking convnets
# trained by run.sh (free phase from zero, rates over the last half, charge estimate as in training).
# RUNS=mnist_15ep sweeps the 15-epoch run of run_long.sh instead.
# Usage (from the repo root, after run.sh): SPIKING_EP_DATA=../shared/data bash results/mnist_conv_spiking/timesteps.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/conv_spiking}
R=results/mnist_conv_spiking
STEPS=5,10,20,40,80
for d in ${RUNS:-mnist fashion_mnist}; do
  spiking-ep evaluate $OUT/$d/config.yaml --weights $OUT/$d --steps $STEPS \
    --out $R/timesteps_$d.md --plot $R/timesteps_$d.png &
done
wait
