#!/usr/bin/env bash
# Spiking EP vs rate EP vs BPTT on the full CIFAR-10 (configs/compare/cifar10_cpu.yaml), CPU.
# Two training processes, one per core (one torch thread each). Both list every arm, in different
# orders: each takes the next arm that is neither finished nor locked by the other (an flock per
# arm), so the cores stay busy until the last arm; then the report (gradient agreement, fixed
# points, conversion, cost) on one core.
# Interrupted? Run it again: finished arms are skipped, the others resume from their checkpoints.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/compare_cifar10/run.sh
set -euo pipefail
OUT=${OUT:-runs/compare_cifar10}
mkdir -p "$(dirname "$OUT")"
CFG=configs/compare/cifar10_cpu.yaml
spiking-ep compare $CFG --out "$OUT" --train-only --arms rate_ep spiking_stdp spiking_bptt bptt spiking_rates >> "$OUT.core0.log" 2>&1 &
spiking-ep compare $CFG --out "$OUT" --train-only --arms bptt spiking_rates spiking_bptt spiking_stdp rate_ep >> "$OUT.core1.log" 2>&1 &
wait
spiking-ep compare $CFG --out "$OUT" --report-only --results results/compare_cifar10 \
  --title "CIFAR-10 (full): spiking EP vs rate EP vs BPTT on one convnet"
