#!/usr/bin/env bash
# Spiking vs rate model: free-phase rate error vs T1, update cosine vs window and β (benchmarks/spiking_accuracy.py).
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/spiking_accuracy/run.sh
set -euo pipefail
python benchmarks/spiking_accuracy.py --out results/spiking_accuracy
