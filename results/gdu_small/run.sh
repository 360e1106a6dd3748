#!/usr/bin/env bash
# GDU check (paper Fig. 2) on the small CIFAR-10 preset (conv 32-64-128, max pooling, softmax readout):
# per-step EP updates of the nudged phase (+β, −β, symmetric) against per-step BPTT gradients,
# on 16 training images in float64, for the untrained network and for the symmetric-EP run of
# results/cifar10_small/run.sh (runs/cifar10_small/ep_symmetric must exist).
# β = 1 is the training value; β = 0.1 shows how the errors change as β shrinks, and the same
# untrained network with average pooling at β = 0.1 is the control without max-pooling argmax
# switches (see spiking_ep/gdu.py: a switch is a jump that EP divides by β). T1 = 400 free
# steps, far more than the preset trains with (30): with init_scale 2 the untrained network's
# synchronous dynamics are still moving at step 100 (max|s_T − s_(T−1)| ≈ 0.1) and settle only by
# step ~400 (≈ 3e-11), and the GDU property assumes a fixed point; each summary.json records the
# residual.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/gdu_small/run.sh
# About a minute per check on a 2-core CPU (mostly loading the data).
set -euo pipefail
R=results/gdu_small
TRAINED=${TRAINED:-runs/cifar10_small/ep_symmetric}
COMMON=(--n-images 16 --set method.T1=400)
spiking-ep gdu configs/cifar10_small.yaml "${COMMON[@]}" --out $R/untrained
spiking-ep gdu configs/cifar10_small.yaml "${COMMON[@]}" --beta 0.1 --out $R/untrained_beta0.1
spiking-ep gdu configs/cifar10_small.yaml "${COMMON[@]}" --beta 0.1 --out $R/untrained_avgpool_beta0.1 \
  --set model.layers.0.pool=avg --set model.layers.1.pool=avg --set model.layers.2.pool=avg
if [ -f "$TRAINED/weights.pt" ]; then
  spiking-ep gdu "$TRAINED/config.yaml" --checkpoint "$TRAINED" "${COMMON[@]}" --out $R/trained
  spiking-ep gdu "$TRAINED/config.yaml" --checkpoint "$TRAINED" "${COMMON[@]}" --beta 0.1 --out $R/trained_beta0.1
else
  echo "skipping the trained check: $TRAINED/weights.pt not found (run results/cifar10_small/run.sh first)" >&2
fi
{
  echo "# GDU check on the small CIFAR-10 preset"
  echo
  echo "Command: \`bash results/gdu_small/run.sh\`; inputs, versions and timings in each folder's summary.json."
  echo "Per-step EP updates of the nudged phase vs per-step BPTT gradients (float64, 16 training images);"
  echo "the tables compare cumulative sums (what the curves show). Folders: untrained / trained network,"
  echo "β = 1 (training value) and β = 0.1, and an average-pooling control at β = 0.1."
  for d in untrained untrained_beta0.1 untrained_avgpool_beta0.1 trained trained_beta0.1; do
    [ -f $R/$d/gdu_table.md ] || continue
    echo
    sed 's/^# /## /' $R/$d/gdu_table.md
    echo
    echo "![per-layer distance]($d/gdu_layers.png) ![cumulative curves]($d/gdu_curves.png)"
  done
} > $R/README.md
