#!/usr/bin/env bash
# The CIFAR-10 comparison's arms were trained in parts by three versions of the code (6512cf4,
# c62cfa3, e504e80: see each run's segments in report.md); this checks that those versions train
# identically. Each version trains the four EP/BPTT arms of configs/compare/cifar10_cpu.yaml for
# 2 epochs on 320 training / 128 test images (same data, seed, augmentation, warm starts), then the
# final weights are compared tensor by tensor against the first version's.
# Usage (from the repo root): SPIKING_EP_DATA=../shared/data bash results/compare_cifar10/same_numerics.sh
set -euo pipefail
COMMITS=${COMMITS:-"6512cf4 c62cfa3 e504e80"}
WORK=$(mktemp -d)
echo "# $0, git $(git rev-parse HEAD), $(date -Iseconds), $(python -c 'import platform, torch; print(platform.processor() or platform.machine(), "torch", torch.__version__)'), one torch thread per run, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
ARMS="rate_ep bptt spiking_rates spiking_stdp"
for c in $COMMITS; do
  git worktree add --detach "$WORK/src-$c" "$c" > /dev/null 2>&1
  (cd "$WORK/src-$c" && PYTHONPATH=$PWD OMP_NUM_THREADS=1 TQDM_DISABLE=1 python -c "import sys; from spiking_ep.cli import main; sys.exit(main())" compare \
     configs/compare/cifar10_cpu.yaml --out "$WORK/out-$c" --train-only --arms $ARMS \
     --set data.train_subset=320 --set data.test_subset=128 --set train.epochs=2 > "$WORK/$c.log" 2>&1)
done
python - "$WORK" $COMMITS <<'PY'
import sys, torch
work, first, *rest = sys.argv[1:]
for arm in ("rate_ep", "bptt", "spiking_rates", "spiking_stdp"):
    ref = torch.load(f"{work}/out-{first}/{arm}-seed0/weights.pt", map_location="cpu")
    for c in rest:
        w = torch.load(f"{work}/out-{c}/{arm}-seed0/weights.pt", map_location="cpu")
        same = all(torch.equal(ref[k], w[k]) for k in ref) and ref.keys() == w.keys()
        diff = max((ref[k].double() - w[k].double()).abs().max().item() for k in ref)
        print(f"{arm}: {c} vs {first}: {'bit-identical' if same else 'DIFFERENT'} (max |Δw| {diff:.3g})")
PY
for c in $COMMITS; do git worktree remove --force "$WORK/src-$c"; done
