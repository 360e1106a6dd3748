#!/usr/bin/env bash
# Warm-started (persistent) vs cold free phases with a short free phase: the MNIST spiking convnet
# (configs/mnist_conv_spiking.yaml) with T1 = 10, T2 = 10 instead of 40 / 20, on the first 10,000
# training digits for 3 epochs; both evaluated from a cold start with eval_T1 = 40 on 2,000 test digits.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/warm_start/run.sh
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-runs/warm_start}
S="--set method.T1=10 --set method.T2=10 --set method.eval_T1=40 --set data.train_subset=10000
   --set data.test_subset=2000 --set train.epochs=3 --set train.out_dir=$OUT"
for w in none persistent; do
  spiking-ep train configs/mnist_conv_spiking.yaml $S --set method.warm_start=$w --set train.run_name=warm_$w
done
spiking-ep report --raw results/warm_start/runs $OUT/warm_none $OUT/warm_persistent \
  --title "Spiking convnet on 10k MNIST digits, T1 = T2 = 10: cold vs warm-started free phases" \
  --out results/warm_start/README.md --plot results/warm_start/curves.png
