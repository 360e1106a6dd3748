"""Which short spiking schedule to train a spiking convnet with: update alignment and cost.

    python benchmarks/conv_schedules.py [--config C] [--schedules 40/20,60/30] [--weights RUN]
                                        [--out results/conv_schedules]

Network: ``--config`` (default configs/mnist_conv_spiking.yaml: conv 32-64, average pooling,
softmax readout), at its seed-0 init or with the weights of a training run (``--weights``).
Batch: the first 64 training images of the config's dataset, normalised as in training. For each
schedule (sync / even-odd) × rate estimate (count / charge) × (T1, T2) it reports the cosine
between the spiking rate-product update and the rate model's symmetric EP update (T1 = 500,
T2 = 100, same β), per parameter tensor, and the seconds per image of one spiking_ep_gradients
call (float32, 1 thread, measured in this run).
Also the free-phase error: mean |r − s*| per layer at T1 (window T1/2).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cosine, first_images  # noqa: E402

import rate_ref as R  # noqa: E402
from spiking_ep.checkpoint import load_weights  # noqa: E402
from spiking_ep.config import load_config  # noqa: E402
from spiking_ep.dynamics import relax_spiking  # noqa: E402
from spiking_ep.learning import spiking_ep_gradients  # noqa: E402
from spiking_ep.runinfo import provenance, provenance_line  # noqa: E402

CONFIG = "configs/mnist_conv_spiking.yaml"
SCHEDULES = "40/20,60/30,100/50"


def run(config: str, schedules: list[tuple[int, int]], weights: str | None) -> dict:
    cfg = load_config(config)
    torch.manual_seed(cfg.train.seed)
    net = R.build_network(cfg.model)
    if weights:
        load_weights(net, weights)
    x, y = first_images(cfg)
    beta = cfg.method.beta
    with torch.no_grad():
        s_star = R.relax(net, x, steps=500, mode="evenodd")
    ref = R.ep_gradients(net, x, y, estimator="symmetric", beta=beta, T1=500, T2=100, mode="evenodd")
    rows = []
    for mode in ("sync", "evenodd"):
        for est in ("count", "charge"):
            sc = dataclasses.replace(cfg.spiking, rate_estimate=est)
            for T1, T2 in schedules:
                r, _, _ = relax_spiking(net, x, steps=T1, window=T1 // 2, cfg=sc, mode=mode)
                t0 = time.perf_counter()
                g, _ = spiking_ep_gradients(net, x, y, beta=beta, T1=T1, T2=T2, cfg=sc, mode=mode)
                ms = (time.perf_counter() - t0) / len(x) * 1e3
                row = {"mode": mode, "estimate": est, "T1": T1, "T2": T2, "ms_per_image": ms,
                       "free_error": [(a - b).abs().mean().item() for a, b in zip(r, s_star)],
                       "cosine": {k: cosine(g[k], ref[k]) for k in ref}}
                rows.append(row)
                print(mode, est, T1, T2, f"{ms:.1f} ms/img", " ".join(f"{k}:{v:.3f}" for k, v in row["cosine"].items()),
                      flush=True)
    return {"weights": weights or "seed-0 init", "rows": rows, "beta": beta,
            "mean_rate": [a.mean().item() for a in s_star]}


def markdown(res: dict) -> str:
    keys = list(res["setups"][0]["rows"][0]["cosine"])
    lines = [f"# Spiking convnet ({res['config']}): short schedules, update alignment and cost", "",
             provenance_line({**res["provenance"], "command": res["command"]}) + ".", "",
             "Cosine between the spiking rate-product update and the rate model's symmetric EP update "
             "(T1 = 500, T2 = 100, even/odd), per parameter tensor; free-phase error = mean |r − s*| per "
             "layer after T1 steps (window T1/2); ms/image = one spiking_ep_gradients call, batch 64, float32.", ""]
    for s in res["setups"]:
        lines += [f"## {s['weights']} (β = {s['beta']:g}; mean rate at s* per layer: "
                  + ", ".join(f"{m:.3f}" for m in s["mean_rate"]) + ")", "",
                  "| schedule | rates | T1 | T2 | ms/image | free error | " + " | ".join(keys) + " |",
                  "|---|---|---|---|---|---|" + "---|" * len(keys)]
        for r in s["rows"]:
            lines.append(f"| {r['mode']} | {r['estimate']} | {r['T1']} | {r['T2']} | {r['ms_per_image']:.1f} | "
                         + " / ".join(f"{e:.4f}" for e in r["free_error"]) + " | "
                         + " | ".join(f"{r['cosine'][k]:.3f}" for k in keys) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", action="append", default=[],
                    help="run folder (or weights.pt) to measure besides the init; repeatable")
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--schedules", default=SCHEDULES, help="T1/T2 pairs, comma-separated")
    ap.add_argument("--out", default="results/conv_schedules")
    args = ap.parse_args(argv)
    schedules = [tuple(int(t) for t in p.split("/")) for p in args.schedules.split(",")]
    torch.set_num_threads(1)
    res = {"command": " ".join(["python benchmarks/conv_schedules.py", *(argv if argv is not None else sys.argv[1:])]),
           "config": args.config,
           "provenance": provenance("cpu"),
           "setups": [run(args.config, schedules, w) for w in [None, *args.weights]]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "README.md").write_text(markdown(res))
    print(f"wrote {out}/README.md")


if __name__ == "__main__":
    main()
