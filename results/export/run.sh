#!/usr/bin/env bash
# Export to NIR / HDF5 (issue 11): train two small MNIST networks cheaply, export each with feedback
# "full" and "none" (NIR) and as plain HDF5, verify (spike for spike, test errors, importers), tabulate.
#
#   SPIKING_EP_DATA=/work/shared/data nice -n 10 bash results/export/run.sh      (from the repo root)
#
# Trainings (one thread each; skipped when finished, resumed when interrupted):
#   mnist_fc    configs/mnist_fc.yaml: 784-512 + readout, rate EP (symmetric, beta 0.5, T1 = 10), 3 epochs
#   mnist_conv  configs/mnist_conv_spiking.yaml: conv 32-64 (avg pool) + readout, spiking EP (IF, even/odd,
#               charge rates, T1 = 40, T2 = 20), 2 epochs on a 30k-image training subset
# Exported files (they hold weights) stay under $RUNS/files; the reports (JSON), the raw run files and
# the table are committed here.
set -euo pipefail
OUT=results/export
RUNS=${RUNS:-runs/export}
SE=${SE:-.venv/bin/spiking-ep}
PY=${PY:-.venv/bin/python}
N_TEST=${N_TEST:-10000}

train() {
  local name=$1; shift
  local dir=$RUNS/$name
  if [ -f "$dir/summary.json" ] && grep -q '"finished"' "$dir/summary.json"; then
    echo "== $name: finished, not retrained"
  elif [ -f "$dir/checkpoint.pt" ]; then
    $SE train --resume "$dir"
  else
    $SE train "$@" --set train.out_dir=$RUNS --set train.run_name=$name --set train.threads=1
  fi
}

train mnist_fc configs/mnist_fc.yaml --set train.epochs=3
train mnist_conv configs/mnist_conv_spiking.yaml --set train.epochs=2 --set data.train_subset=30000

mkdir -p $RUNS/files $OUT/reports
for run in mnist_fc mnist_conv; do
  for fb in full none; do
    $SE export $RUNS/$run --feedback $fb --n-test $N_TEST --out $RUNS/files/$run-$fb.nir --set train.threads=1
    cp $RUNS/files/$run-$fb.nir.json $OUT/reports/
  done
  $SE export $RUNS/$run --format h5 --n-test 1000 --out $RUNS/files/$run-full.h5 --set train.threads=1
  cp $RUNS/files/$run-full.h5.json $OUT/reports/
done

$PY -c "from spiking_ep.report import collect_raw; collect_raw(['$RUNS/mnist_fc', '$RUNS/mnist_conv'], '$OUT/runs')"
$PY $OUT/table.py $OUT/reports --out $OUT/README.md
