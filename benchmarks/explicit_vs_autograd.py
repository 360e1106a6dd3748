"""Explicit drives vs autograd of Φ (the reference code's style) per relaxation step, same network.

    python benchmarks/explicit_vs_autograd.py [--threads 1] [--repeats 5] [--batch 64] [--steps 30]

The paper's code computes each step's drives by differentiating Φ with autograd; ours computes
them explicitly from the layers (one convolution per layer and direction; with max pooling the
forward convolution's argmax is reused by the feedback). Both run ``--steps`` free-phase steps
(sync, no graph kept between steps) and one nudged phase of ``--steps`` // 3 steps on the small
CIFAR-10 convnet with max and with average pooling, alternating in this one process; the states
are checked equal. A profile of one iteration of each (torch.profiler, self CPU time per operator)
splits its time into convolutions (forward, transposed, backward-data: the multiply-adds both
implementations must do) and everything else, and gives the speed-up ceiling: the autograd time
over the explicit step's convolution time, what explicit drives would reach if all their
non-convolution work were free. Output: results/benchmarks/explicit_vs_autograd.{json,md}.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternating, first_images, load_net, median, save_result  # noqa: E402

import rate_ref as R  # noqa: E402
from spiking_ep.inference import as_input  # noqa: E402

CONFIG = "configs/compare/cifar10_cpu.yaml"


def iteration(net, x, y, steps: int, impl: str):
    with torch.no_grad():
        s = R.settle(net, x, steps=steps, impl=impl)[0]
        return R.settle(net, x, steps=max(1, steps // 3), beta=1.0, y=y, state=s, impl=impl)[0]


def conv_share(fn) -> float:
    """Fraction of ``fn()``'s self CPU time (torch.profiler) spent in convolution kernels."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key)
    return conv / total


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for pool in ("max", "avg"):
        cfg, net = load_net(CONFIG, pool=pool)
        x, y = first_images(cfg, args.batch)
        x = as_input(x, cfg)
        a, b = iteration(net, x, y, args.steps, "explicit"), iteration(net, x, y, args.steps, "autograd")
        diff = max((u - v).abs().max().item() for u, v in zip(a, b))
        t = alternating({impl: (lambda impl=impl: iteration(net, x, y, args.steps, impl)) for impl in ("explicit", "autograd")},
                        args.repeats)
        te, ta = median(t["explicit"]), median(t["autograd"])
        share = {impl: conv_share(lambda impl=impl: iteration(net, x, y, args.steps, impl))
                 for impl in ("explicit", "autograd")}
        rows.append({"pool": pool, "explicit_ms": 1e3 * te, "autograd_ms": 1e3 * ta, "speedup": ta / te,
                     "max_state_difference": diff, "times_s": t, "conv_share": share,
                     "ceiling": ta / (te * share["explicit"])})
    table = [f"Small CIFAR-10 convnet (`{CONFIG}`, conv 32-64-128, seed-0 init), batch {args.batch}, {args.steps} free "
             f"+ {max(1, args.steps // 3)} nudged steps (sync), median of {args.repeats} alternating rounds, "
             f"{args.threads} thread(s).", "",
             "| pooling | explicit drives (ms) | autograd of Φ (ms) | speed-up | max state difference | "
             "convolutions' share, explicit / autograd | ceiling |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['pool']} | {r['explicit_ms']:.0f} | {r['autograd_ms']:.0f} | {r['speedup']:.2f}× | "
              f"{r['max_state_difference']:.1e} | {100 * r['conv_share']['explicit']:.0f} % / "
              f"{100 * r['conv_share']['autograd']:.0f} % | {r['ceiling']:.2f}× |" for r in rows]
    table += ["", "Ceiling: autograd time / the explicit step's convolution time (the speed-up if every "
              "non-convolution operation of the explicit step cost nothing); shares from a torch.profiler run "
              "of one iteration (self CPU time; convolution = forward, transposed and backward-data kernels)."]
    save_result("explicit_vs_autograd", {"rows": rows, "batch": args.batch, "steps": args.steps,
                                         "threads": args.threads}, table,
                "Explicit drives vs autograd of Φ, per relaxation")


if __name__ == "__main__":
    main()
