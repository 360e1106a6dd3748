"""Synchronous vs even/odd relaxation, stopped early at a fixed-point residual: steps and seconds.

    python benchmarks/relaxation.py [--weights RUN_OR_FILE] [--pool avg|max] [--threads 1] [--batch 64]

Each schedule relaxes the free phase from zero until the residual max|s_{t+1} − s_t| (whole batch,
all layers) falls below r (``settle(..., tol=r)``: early stopping), for r = 1e-2, 1e-3, 1e-4, at
most --max-steps steps; reported: steps used and seconds, and whether the two schedules ended at the
same fixed point (they can differ on a strongly coupled net: the schedule is part of the model).
Small CIFAR-10 convnet (configs/compare/cifar10_cpu.yaml), seed-0 init or --weights. The paper's
fixed schedule (sync, T1 = 250) is timed beside them. Output: results/benchmarks/relaxation.{json,md}.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import first_images, load_net, save_result  # noqa: E402

import rate_ref as R  # noqa: E402
from spiking_ep.inference import as_input  # noqa: E402

CONFIG = "configs/compare/cifar10_cpu.yaml"


def timed_settle(net, x, **kw):
    with torch.no_grad():
        t0 = time.perf_counter()
        s, n = R.settle(net, x, **kw)
        return s, n, time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", help="trained weights (a run folder or weights file); default: seed-0 init")
    ap.add_argument("--pool", choices=("avg", "max"), default="avg")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=1000)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, net = load_net(CONFIG, args.weights, pool=args.pool)
    x, _ = first_images(cfg, args.batch)
    x = as_input(x, cfg)
    rows, ends = [], {}
    for r in (1e-2, 1e-3, 1e-4):
        for mode in ("sync", "evenodd"):
            s, n, sec = timed_settle(net, x, steps=args.max_steps, tol=r, mode=mode)
            ends[mode, r] = s
            rows.append({"residual": r, "mode": mode, "steps": n, "seconds": sec, "reached": n < args.max_steps})
    _, n_p, sec_p = timed_settle(net, x, steps=250, mode="sync")
    diff = max((a - b).abs().max().item() for a, b in zip(ends["sync", 1e-4], ends["evenodd", 1e-4]))
    what = f"trained weights {args.weights}" if args.weights else "seed-0 initial weights"
    table = [f"Small CIFAR-10 convnet ({args.pool} pooling, {what}), {args.batch} training images, free phase from "
             f"zero, {args.threads} thread(s).", "",
             "| residual r | schedule | steps to max\\|Δs\\| < r | seconds | reached |", "|---|---|---|---|---|"]
    table += [f"| {r['residual']:g} | {r['mode']} | {r['steps']} | {r['seconds']:.2f} | {'yes' if r['reached'] else 'no'} |"
              for r in rows]
    by = {(r["mode"], r["residual"]): r for r in rows}
    table += ["", f"Even/odd needs {by['evenodd', 1e-4]['steps'] / by['sync', 1e-4]['steps']:.2f}× the synchronous "
                  f"steps to r = 1e-4; the paper's fixed schedule (sync, T1 = 250) takes {sec_p:.2f} s. Largest state "
                  f"difference between the two schedules' end states at r = 1e-4: {diff:.2e} "
                  f"({'the same fixed point' if diff < 1e-2 else 'different fixed points'})."]
    save_result(f"relaxation_{args.pool}{'_trained' if args.weights else ''}",
                {"rows": rows, "paper_fixed": {"T1": 250, "seconds": sec_p}, "end_state_difference": diff,
                 "weights": args.weights, "pool": args.pool, "batch": args.batch}, table,
                "Relaxation schedules: steps and seconds to a fixed-point residual")


if __name__ == "__main__":
    main()
