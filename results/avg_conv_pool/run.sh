#!/usr/bin/env bash
# Strided average-pooling convolution vs conv then pool, side by side (benchmarks/avg_conv_pool.py).
# Run on a quiet machine. Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/avg_conv_pool/run.sh
set -euo pipefail
python benchmarks/avg_conv_pool.py --threads 1 --repeats 5 --out results/avg_conv_pool
