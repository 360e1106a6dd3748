"""Table of the GDU check against β (results/gdu_small/beta_sweep.sh), from each check's gdu_table.csv.

For every parameter tensor: the relative error of the summed EP estimate (one-sided +β and symmetric)
against the truncated-BPTT gradient, per β, and the slope of log(error) against log(β) fitted over
the β values (1 means error ∝ β, 2 means ∝ β², 0.5 means ∝ √β, 0 means it does not shrink).
Usage: python results/gdu_small/beta_sweep.py results/gdu_small/beta_sweep
"""
import csv
import json
import math
import sys
from pathlib import Path


def slope(bs, es):
    xs, ys = [math.log(b) for b in bs], [math.log(e) for e in es]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main(root: str) -> None:
    root = Path(root)
    data = {}
    for d in sorted(root.iterdir()):
        if not (d / "gdu_table.csv").is_file():
            continue
        pool, beta = d.name.split("_beta")
        with open(d / "gdu_table.csv") as f:
            for r in csv.DictReader(f):
                if r["kind"] == "weights" or "." in r["tensor"]:
                    data.setdefault((pool, r["tensor"]), {})[float(beta)] = (float(r["final_plus"]), float(r["final_sym"]))
        summ = json.loads((d / "summary.json").read_text())
    betas = sorted({b for v in data.values() for b in v}, reverse=True)
    print("# GDU check against β: max vs average pooling (untrained small CIFAR-10 preset)\n")
    print("Made by `bash results/gdu_small/beta_sweep.sh` (this table by `beta_sweep.py` from the checks' "
          "gdu_table.csv). Relative error ‖g_EP − g_BPTT‖/‖g_BPTT‖ of the summed estimate over the nudged phase "
          "(16 CIFAR-10 training images, float64, T1 = 400, T2 = 10). Slope: fitted d log(error) / d log(β).\n")
    print("| pooling | tensor | estimate | " + " | ".join(f"β = {b:g}" for b in betas) + " | slope |")
    print("|---|---|---|" + "---|" * len(betas) + "---|")
    for (pool, tensor), v in sorted(data.items()):
        for i, name in ((0, "one-sided +β"), (1, "symmetric")):
            es = [v[b][i] for b in betas if b in v]
            print(f"| {pool} | {tensor} | {name} | " + " | ".join(f"{v[b][i]:.3g}" if b in v else "–" for b in betas)
                  + f" | {slope([b for b in betas if b in v], es):.2f} |")
    print(f"\nVersions and commands: each check's summary.json (e.g. `{summ['command']}`).")


if __name__ == "__main__":
    main(sys.argv[1])
