"""Why the spiking BPTT arm learns slowly: its surrogate gradients against BPTT's on its own weights.

    python results/compare_cifar10/sbptt_gradients.py [RUNS_DIR]  > results/compare_cifar10/sbptt_gradients.md

RUNS_DIR (default runs/compare_cifar10) holds the comparison's arms. On every weight snapshot of
the spiking BPTT run (weights-epochNNN.pt, 0 = initialisation) and of the rate-EP run, and on the
comparison's fixed training batches (compare.grad_batches × compare.grad_batch_size), it computes
the spiking BPTT gradient and rate BPTT's (each arm's own config, as the report does) and prints,
per layer, the cosine and the norm ratio ‖g_spiking BPTT‖ / ‖g_BPTT‖, mean over the batches. The
arms share their learning rates, so a norm ratio of r makes spiking BPTT's steps r times BPTT's.
Also writes sbptt_gradients.json beside this script.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from spiking_ep.compare import gap as G
from spiking_ep.config import load_config
from spiking_ep.runinfo import provenance, provenance_line

HERE = Path(__file__).resolve().parent
ARMS = ("bptt", "spiking_bptt")


def main(runs_dir: str = "runs/compare_cifar10") -> None:
    out = Path(runs_dir)
    cfg = load_config("configs/compare/cifar10_cpu.yaml", [])
    ctx = G.Context(cfg, list(ARMS), {(a, 0): out / f"{a}-seed0" for a in ARMS}, log=lambda *a: None)
    cmp = cfg.compare
    rows = []
    for src in ("spiking_bptt", "rate_ep"):
        run = out / f"{src}-seed0"
        rows += [{"weights_from": src, **r}
                 for r in G.agreement_on_snapshots(ctx, run, G.snapshot_epochs(run, None), ["spiking_bptt"])]
    prov = provenance(ctx.device)
    (HERE / "sbptt_gradients.json").write_text(json.dumps({"rows": rows, "provenance": prov}, indent=1) + "\n")
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    print("# Spiking BPTT's gradients against rate BPTT's\n")
    print(__doc__.split("\n\n")[2].replace("\n", " ").strip() + "\n")
    print("| weights | epoch | " + " | ".join(f"{la}: cosine / norm ratio" for la in layers) + " |")
    print("|---|---|" + "---|" * len(layers))
    for src in dict.fromkeys(r["weights_from"] for r in rows):
        for e in sorted({r["epoch"] for r in rows if r["weights_from"] == src}):
            cells = [next(f"{r['cosine']:.3f} / {r['norm_ratio']:.2f}" for r in rows
                          if r["weights_from"] == src and r["epoch"] == e and r["layer"] == la) for la in layers]
            print(f"| {src} run | {e} | " + " | ".join(cells) + " |")
    print(f"\n{cmp.grad_batches} training batches of {cmp.grad_batch_size} images. " + provenance_line(prov))


if __name__ == "__main__":
    main(*sys.argv[1:])
