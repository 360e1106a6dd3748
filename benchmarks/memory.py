"""Peak memory of one training iteration: EP against T1 (flat), BPTT against K (grows).

    python benchmarks/memory.py [--batch 64] [--threads 1]

EP keeps only the current state (plus the free-phase state for the nudged phases), so its
memory should not depend on the number of steps; BPTT stores every unrolled step for the
backward pass. Each point is the peak of the tensors one gradient computation allocates (torch
profiler; on CUDA torch.cuda.max_memory_allocated), on the small CIFAR-10 convnet of
configs/compare/cifar10_cpu.yaml. Output: results/benchmarks/memory.{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_result  # noqa: E402

from spiking_ep.compare.arms import arm_config  # noqa: E402
from spiking_ep.compare.measure import peak_memory  # noqa: E402
from spiking_ep.config import load_config  # noqa: E402

CONFIG = "configs/compare/cifar10_cpu.yaml"


def with_method(cfg, threads, **kw):
    return dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, tol=None, **kw),
                               train=dataclasses.replace(cfg.train, threads=threads))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    base = load_config(CONFIG)
    rows = []
    for T1 in (10, 30, 100, 250):
        for arm in ("rate_ep", "spiking_rates"):
            c = with_method(arm_config(base, arm, 0, "unused"), args.threads, T1=T1, T2=25)
            rows.append({"method": arm, "T1": T1, "T2": 25, "K": None, **peak_memory(c, args.batch)})
    for K in (5, 10, 25, 50, 100):
        for arm in ("bptt", "spiking_bptt"):
            c = with_method(arm_config(base, arm, 0, "unused"), args.threads, T1=250, K=K)
            rows.append({"method": arm, "T1": 250, "T2": None, "K": K, **peak_memory(c, args.batch)})
    table = [f"Small CIFAR-10 convnet (`{CONFIG}`), batch {args.batch}; one gradient computation per point; "
             f"{rows[0]['how']}.", "",
             "| method | T1 | T2 / K | peak memory (MiB) |", "|---|---|---|---|"]
    table += [f"| {r['method']} | {r['T1']} | {r['T2'] if r['K'] is None else 'K ' + str(r['K'])} | "
              f"{r['peak_bytes'] / 2**20:.1f} |" for r in rows]
    ep = [r["peak_bytes"] for r in rows if r["method"] == "rate_ep"]
    bp25 = next(r["peak_bytes"] for r in rows if r["method"] == "bptt" and r["K"] == 25)
    ep25 = next(r["peak_bytes"] for r in rows if r["method"] == "rate_ep" and r["T1"] == 250)
    table += ["", f"Rate EP from T1 = 10 to 250: {min(ep) / 2**20:.1f}–{max(ep) / 2**20:.1f} MiB; at T2 = 25 EP needs "
                  f"{ep25 / bp25:.2f}× the memory of BPTT with K = 25."]
    save_result("memory", {"rows": rows, "batch": args.batch}, table,
                "Peak memory of one iteration: EP vs T1, BPTT vs K")


if __name__ == "__main__":
    main()
