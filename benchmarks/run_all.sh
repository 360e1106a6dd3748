#!/usr/bin/env bash
# Every CPU benchmark (results/benchmarks/ and the timing folders of results/), one after the other, one torch thread each. Run it on
# a quiet machine (each result records the load average it saw). About an hour on this 2-core CPU.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash benchmarks/run_all.sh [WEIGHTS]
#   WEIGHTS: trained small-CIFAR-10 weights for the relaxation benchmark (e.g. a compare rate_ep run)
set -euo pipefail
python benchmarks/explicit_vs_autograd.py --threads 1
python benchmarks/relaxation.py --threads 1 --pool avg
python benchmarks/relaxation.py --threads 1 --pool max
if [ -n "${1:-}" ]; then python benchmarks/relaxation.py --threads 1 --pool avg --weights "$1"; fi
python benchmarks/memory.py --threads 1
python benchmarks/iteration.py --threads 1
python benchmarks/time_to_error.py --threads 1
python benchmarks/targets.py
bash results/avg_conv_pool/run.sh
bash results/conv_schedules/run.sh
bash results/conv_schedules_cifar10/run.sh
bash results/spiking_accuracy/run.sh
