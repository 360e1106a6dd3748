#!/usr/bin/env bash
# All GPU checks in one command, offline, within about 10 minutes on one CUDA GPU.
# Prepare on a CPU machine (once): a CIFAR-10 subset and the snnTorch wheel to carry —
#   echo /.gpu/ >> .git/info/exclude
#   SPIKING_EP_DATA=../shared/data python benchmarks/gpu_data.py --out .gpu/data
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .gpu/whl snntorch==1.0.0
# On the GPU machine (the device tool: carry .gpu), from the repository root:
#   bash benchmarks/gpu_check.sh            # figures into $OUT (or results/benchmarks/gpu)
set -uo pipefail
OUT=${OUT:-results/benchmarks/gpu}
mkdir -p "$OUT"
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} SPIKING_EP_DATA=${SPIKING_EP_DATA:-$PWD/.gpu/data} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>&1
timeout 90 python3 -m pytest -q -m gpu tests -p no:cacheprovider > "$OUT/pytest_gpu.txt" 2>&1
timeout 480 python3 benchmarks/gpu_check.py --out "$OUT" --budget 420 2>&1 | tail -c 20000 > "$OUT/gpu_check.log"
cat "$OUT/pytest_gpu.txt" | tail -3
cat "$OUT/gpu_check.json"
