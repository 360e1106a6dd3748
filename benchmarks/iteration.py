"""One training iteration of every method on the small CIFAR-10 convnet and on the paper's convnet.

    python benchmarks/iteration.py [--threads 1] [--repeats 3] [--batch 64]

An iteration is what the trainer does per mini-batch: the free phase, the nudged phase(s) (EP)
or the unrolled steps and the backward pass (BPTT), and the parameter gradients, from a cold
start with each method's configured steps (early stopping off, so the work is fixed). Methods
are the arms of ``spiking-ep compare`` (configs/compare/cifar10_cpu.yaml and cifar10_paper.yaml,
the latter with shorter phases on a CPU: --paper-steps). All methods of one network alternate in
this one process. Reported: ms per iteration, images/s, the achieved GFLOP/s of the convolution
and matrix work (2 × multiply-accumulates of the drives per step × steps; BPTT's backward steps
count twice) against this machine's measured convolution throughput, and the peak memory one
iteration allocates (torch profiler; CUDA: max_memory_allocated). Output: results/benchmarks/iteration.{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternating, conv_throughput, first_images, median, save_result  # noqa: E402

import rate_ref as R  # noqa: E402
from spiking_ep.compare import measure as M  # noqa: E402
from spiking_ep.compare.arms import ARMS, DESCRIPTIONS, arm_config  # noqa: E402
from spiking_ep.config import load_config  # noqa: E402
from spiking_ep.gradients import compute_gradients  # noqa: E402
from spiking_ep.inference import as_input  # noqa: E402

NETS = {"small CIFAR-10 convnet (32-64-128, avg pool)": ("configs/compare/cifar10_cpu.yaml", []),
        "paper's convnet (128-256-512-512, avg pool)": ("configs/compare/cifar10_paper.yaml", None)}


def flops_per_image(net, cfg) -> float:
    """2 × MACs of the drives over the iteration's steps (see the module docstring)."""
    m, per = cfg.method, M.rate_macs(net)["per_step"]
    steps = m.T1 + 2 * m.T2 if m.name == "ep" else m.T1 + 2 * m.bptt_K
    return 2.0 * per * steps


def bench_net(config: str, sets: list[str], batch: int, repeats: int) -> list[dict]:
    base = load_config(config, sets + ["method.tol=null"])
    cfgs = {a: arm_config(base, a, 0, "unused") for a in ARMS}
    cfgs = {a: dataclasses.replace(c, method=dataclasses.replace(c.method, tol=None)) for a, c in cfgs.items()}
    torch.manual_seed(0)
    net = R.build_network(cfgs["rate_ep"].model)
    x, y = first_images(cfgs["rate_ep"], batch)
    x = as_input(x, cfgs["rate_ep"])
    gen = torch.Generator().manual_seed(0)
    fns = {a: (lambda c=c: compute_gradients(net, x, y, c, gen, None, None)) for a, c in cfgs.items()}
    times = alternating(fns, repeats)
    rows = []
    for a, c in cfgs.items():
        t = median(times[a])
        m = c.method
        steps = f"T1 {m.T1}, T2 {m.T2}" if m.name == "ep" else f"T1 {m.T1}, K {m.bptt_K}"
        mem = M.peak_memory(dataclasses.replace(c, train=dataclasses.replace(c.train, threads=torch.get_num_threads())),
                            batch)
        rows.append({"method": a, "steps": f"{steps}, {m.mode}", "ms_per_iteration": 1e3 * t,
                     "images_per_s": batch / t, "gflops": flops_per_image(net, c) * batch / t / 1e9,
                     "peak_memory_mib": mem["peak_bytes"] / 2**20, "times_s": times[a]})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--paper-steps", default="method.T1=30,method.T2=10,compare.spiking_T1=30,compare.spiking_T2=20,"
                    "compare.spiking_eval_T1=40", help="--set overrides for the paper net (comma-separated)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = conv_throughput(args.threads)
    results, table = {}, [f"Measured convolution throughput of this machine with {args.threads} thread(s): "
                          f"**{peak:.0f} GFLOP/s** (64×64→128 3×3 conv, 16×16, channels-last). Batch {args.batch}, "
                          f"median of {args.repeats} alternating rounds.", ""]
    for title, (config, sets) in NETS.items():
        sets = sets if sets is not None else args.paper_steps.split(",")
        rows = bench_net(config, sets, args.batch, args.repeats)
        results[title] = {"config": config, "overrides": sets, "rows": rows}
        table += [f"**{title}** (`{config}`{', ' + ' '.join(sets) if sets else ''}):", "",
                  "| method | steps | ms / iteration | images / s | GFLOP/s | of measured peak | peak memory |",
                  "|---|---|---|---|---|---|---|"]
        table += [f"| {DESCRIPTIONS[r['method']]} | {r['steps']} | {r['ms_per_iteration']:.0f} | {r['images_per_s']:.1f} | "
                  f"{r['gflops']:.0f} | {100 * r['gflops'] / peak:.0f} % | {r['peak_memory_mib']:.0f} MiB |" for r in rows]
        table.append("")
    table.append("GFLOP/s counts 2 × the multiply-accumulates of the drives (forward and feedback, every layer, every "
                 "step; BPTT's backward steps twice); neuron updates, STDP correlations and the update itself are "
                 "not counted, so the ratio to the peak is a lower bound on the machine's use. Peak memory: the peak "
                 "of the tensors one iteration allocates (torch profiler).")
    save_result("iteration", {"conv_peak_gflops": peak, "threads": args.threads, "batch": args.batch,
                              "repeats": args.repeats, "nets": results}, table,
                "One training iteration: rate EP, spiking EP (rates, STDP), BPTT, spiking BPTT")


if __name__ == "__main__":
    main()
