"""How much of W − B the weight decay removes in the vf_small runs, simulated with their optimiser.

Under the new rule W and B receive the same update, so their difference D = W − B changes only
through weight decay λ. torch's SGD applies it through the momentum buffer:
    v ← μ v + λ D,   D ← D − η_t v        (μ = 0.9, λ = 3e-4, η_t the layer's cosine-annealed rate)
so the decay per update approaches η_t λ / (1 − μ), ten times η_t λ. This script runs that
recursion over the runs' schedule (configs/cifar10_small_vf_new.yaml: 4 epochs of ⌈4000/128⌉ = 32
updates, per-layer rates, cosine to 1e-5 stepped per epoch) and prints the fraction of D removed,
with and without momentum. Usage: python results/vf_small/wb_decay.py > results/vf_small/wb_decay.md
"""
import math

from spiking_ep.config import load_config
from spiking_ep.runinfo import provenance, provenance_line

CONFIG = "configs/cifar10_small_vf_new.yaml"


def decayed_fraction(lr0: float, lam: float, mu: float, epochs: int, per_epoch: int, eta_min: float) -> float:
    d, v = 1.0, 0.0
    for e in range(epochs):
        lr = eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * e / epochs)) / 2
        for _ in range(per_epoch):
            v = mu * v + lam * d
            d -= lr * v
    return 1.0 - d


def main() -> None:
    cfg = load_config(CONFIG)
    o, n = cfg.optim, math.ceil(cfg.data.train_subset / cfg.train.batch_size)
    print("# Weight decay of W − B in the vf_small runs (new rule)\n")
    print(f"Simulated from `{CONFIG}`: {cfg.train.epochs} epochs × {n} updates, weight decay {o.weight_decay:g}, "
          f"momentum {o.momentum:g}, cosine annealing to {o.eta_min:g} (stepped per epoch).\n")
    print("| layer | learning rate | W − B removed, with momentum (the runs) | without momentum |")
    print("|---|---|---|---|")
    for i, lr in enumerate(o.lrs[:-1]):
        if i == 0:
            continue    # layer 1 has no B (the input has no feedback weights)
        a = decayed_fraction(lr, o.weight_decay, o.momentum, cfg.train.epochs, n, o.eta_min)
        b = decayed_fraction(lr, o.weight_decay, 0.0, cfg.train.epochs, n, o.eta_min)
        print(f"| layer {i + 1} | {lr:g} | {100 * a:.2f} % | {100 * b:.2f} % |")
    print("\n" + provenance_line(provenance()))


if __name__ == "__main__":
    main()
