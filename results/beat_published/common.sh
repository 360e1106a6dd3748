# Sourced by the run*.sh scripts here: one run of a list, trained (or resumed) under a lock of its own,
# then its inference sweeps — test error and synaptic operations vs steps, in the training and the
# NIR-exact neuron profiles. Several invocations can share a list: a run whose lock another holds is
# left to it, a finished run is skipped, an interrupted one resumes from its checkpoint.
# It also sets the scripts' shared defaults: OUT (the run folders), JOBS (runs at a time: one per core).
set -euo pipefail
OUT=${OUT:-runs/beat_published}
JOBS=${JOBS:-2}
HERE=results/beat_published
mkdir -p "$OUT"
export OUT
NIR="--set spiking.reset=zero --set spiking.v_floor=null --set spiking.v_ceiling=null --set spiking.rate_estimate=count --set method.mode=forward"
train_and_sweep() {  # name config seed steps "evaluate overrides" [train overrides...]
  local name=$1 config=$2 seed=$3 steps=$4 sweep=$5
  shift 5
  (
    flock -n 9 || exit 0
    if [ ! -f "$OUT/$name/summary.json" ]; then
      if [ -f "$OUT/$name/checkpoint.pt" ]; then spiking-ep train --resume "$OUT/$name" > "$OUT/$name.log" 2>&1
      else spiking-ep train "$config" --set train.seed="$seed" --set train.out_dir="$OUT" \
             --set train.run_name="$name" "$@" > "$OUT/$name.log" 2>&1; fi
    fi
    [ -f "$OUT/$name/summary.json" ] || exit 1   # training failed: its log says why
    # $sweep and $NIR are lists of --set options: split on purpose
    [ -f "$OUT/$name.steps.json" ] || spiking-ep evaluate "$OUT/$name" --steps "$steps" $sweep --json > "$OUT/$name.steps.json"
    [ -f "$OUT/$name.steps_nir.json" ] || spiking-ep evaluate "$OUT/$name" --steps "$steps" $sweep $NIR --json > "$OUT/$name.steps_nir.json"
  ) 9> "$OUT/$name.lock"
}
export -f train_and_sweep
export NIR

run_list() {  # stdin: one run per line, the arguments of the calling script's exported run function
  xargs -P "$JOBS" -L 1 bash -c 'run "$@"' _
  python "$HERE/table.py" "$OUT" > "$HERE/README.md"
}
