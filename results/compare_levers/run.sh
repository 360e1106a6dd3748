#!/usr/bin/env bash
# Which speed levers to use in configs/compare/cifar10_cpu.yaml: each lever's effect on time and
# accuracy, measured on CIFAR-10 (10,000 training / 2,000 test images, 2 epochs, one thread each),
# on the compare preset's network (conv 32-64-128, average pooling, θ = 2, softmax readout).
#   rate EP:    sync vs even/odd; early stopping (method.tol); warm-started free phases
#   spiking EP: count vs charge rates; sync vs even/odd; warm-started free phases (with a shorter T1)
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/compare_levers/run.sh
# Env: OUT (run folders, default runs/compare_levers), ONLY (space-separated run names to run).
set -euo pipefail
OUT=${OUT:-runs/compare_levers}
CFG=configs/compare/cifar10_cpu.yaml
COMMON="--set data.train_subset=10000 --set data.test_subset=2000 --set train.epochs=2 --set train.threads=1 --set train.batch_size=128
        --set train.out_dir=$OUT --set train.save_epoch_weights=false"
RATE="--set model.kind=rate --set method.name=ep --set method.eval_T1=30"
SPK="--set model.kind=spiking --set method.name=ep --set method.tol=null --set spiking.rule=rates --set method.eval_T1=40"
declare -A RUNS=(
  [rate_sync]="$RATE --set method.mode=sync --set method.T1=30 --set method.T2=10 --set method.tol=null --set method.warm_start=none"
  [rate_evenodd]="$RATE --set method.mode=evenodd --set method.T1=30 --set method.T2=10 --set method.tol=null --set method.warm_start=none"
  [rate_evenodd_tol]="$RATE --set method.mode=evenodd --set method.T1=30 --set method.T2=10 --set method.tol=1.0e-3 --set method.warm_start=none"
  [rate_evenodd_tol_warm]="$RATE --set method.mode=evenodd --set method.T1=30 --set method.T2=10 --set method.tol=1.0e-3 --set method.warm_start=persistent"
  [spk_evenodd_count]="$SPK --set method.mode=evenodd --set method.T1=40 --set method.T2=20 --set spiking.rate_estimate=count --set method.warm_start=none"
  [spk_evenodd_charge]="$SPK --set method.mode=evenodd --set method.T1=40 --set method.T2=20 --set spiking.rate_estimate=charge --set method.warm_start=none"
  [spk_sync_charge]="$SPK --set method.mode=sync --set method.T1=40 --set method.T2=20 --set spiking.rate_estimate=charge --set method.warm_start=none"
  [spk_evenodd_charge_warm_T1_20]="$SPK --set method.mode=evenodd --set method.T1=20 --set method.T2=20 --set spiking.rate_estimate=charge --set method.warm_start=persistent"
  [spk_evenodd_charge_T1_20]="$SPK --set method.mode=evenodd --set method.T1=20 --set method.T2=20 --set spiking.rate_estimate=charge --set method.warm_start=none"
)
ORDER="rate_sync rate_evenodd rate_evenodd_tol rate_evenodd_tol_warm spk_evenodd_charge spk_evenodd_count spk_sync_charge spk_evenodd_charge_warm_T1_20 spk_evenodd_charge_T1_20"
for name in ${ONLY:-$ORDER}; do
  if [ -f "$OUT/$name/summary.json" ]; then continue; fi
  if [ -f "$OUT/$name/checkpoint.pt" ]; then
    spiking-ep train --resume "$OUT/$name"
  else
    spiking-ep train $CFG $COMMON ${RUNS[$name]} --set train.run_name=$name
  fi
done
python results/compare_levers/table.py "$OUT" > results/compare_levers/README.md
