#!/usr/bin/env bash
# Accuracy, spikes and synaptic operations vs inference time steps for the trained networks of
# run.sh: the spiking-EP-trained network, and the rate-EP-trained network run as a spiking network.
# Usage (from the repo root, after run.sh): SPIKING_EP_DATA=../shared/data bash results/mnist_fc_spiking/timesteps.sh
set -euo pipefail
OUT=${OUT:-runs/mnist_fc_spiking}
R=results/mnist_fc_spiking
STEPS=5,10,20,50,100,200,400
spiking-ep evaluate $OUT/spiking_rates/config.yaml --weights $OUT/spiking_rates --steps $STEPS \
  --out $R/timesteps_spiking_trained.md --plot $R/timesteps_spiking_trained.png
spiking-ep evaluate configs/mnist_fc_spiking.yaml --weights $OUT/rate_ep --steps $STEPS \
  --out $R/timesteps_rate_trained_as_spiking.md --plot $R/timesteps_rate_trained_as_spiking.png
spiking-ep evaluate $OUT/rate_ep/config.yaml --weights $OUT/rate_ep --steps 10 --out $R/rate_trained_as_rate.md
