#!/usr/bin/env bash
# Spiking EP vs rate EP vs BPTT on the full CIFAR-10 (configs/compare/cifar10_cpu.yaml), CPU.
# Two training processes, one per core (one torch thread each), arms split so both take about
# as long; then the report (gradient agreement, fixed points, conversion, cost) on one core.
# Interrupted? Run it again: finished arms are skipped, the others resume from their checkpoints.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/compare_cifar10/run.sh
set -euo pipefail
OUT=${OUT:-runs/compare_cifar10}
mkdir -p "$(dirname "$OUT")"
CFG=configs/compare/cifar10_cpu.yaml
spiking-ep compare $CFG --out "$OUT" --train-only --arms spiking_stdp rate_ep > "$OUT.core0.log" 2>&1 &
spiking-ep compare $CFG --out "$OUT" --train-only --arms spiking_rates spiking_bptt bptt > "$OUT.core1.log" 2>&1 &
wait
spiking-ep compare $CFG --out "$OUT" --report-only --results results/compare_cifar10 \
  --title "CIFAR-10 (full): spiking EP vs rate EP vs BPTT on one convnet"
