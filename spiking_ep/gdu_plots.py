"""Plots of the GDU check (:mod:`spiking_ep.gdu`): cumulative curves per element, per-layer bars."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .gdu import ESTIMATES, LABELS, GDUTrace


def plot_curves(trace: GDUTrace, path: str | Path, *, per_tensor: int = 3, seed: int = 0, title: str = "") -> None:
    """Cumulative −BPTT vs EP (one-sided ±β, symmetric) for ``per_tensor`` random elements of each tensor."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(seed)
    names = trace.names
    fig, axes = plt.subplots(len(names), per_tensor, figsize=(3.2 * per_tensor, 2.1 * len(names)), squeeze=False)
    t = list(range(1, trace.T2 + 1))
    for row, name in enumerate(names):
        c_ref = trace.ref[name].cumsum(0).flatten(1)
        # prefer elements BPTT actually reaches (saturated or dead units have zero gradient)
        live = (c_ref.abs().amax(0) > 1e-9 * c_ref.abs().max()).nonzero().flatten()
        pool = live if len(live) >= per_tensor else torch.arange(c_ref.shape[1])
        pick = pool[torch.randperm(len(pool), generator=g)[:per_tensor]]
        for col in range(per_tensor):
            ax = axes[row][col]
            if col >= len(pick):
                ax.axis("off")
                continue
            j = int(pick[col])
            ax.plot(t, c_ref[:, j].tolist(), "k-", lw=2, label="−BPTT")
            for e, style in (("plus", "C0--"), ("minus", "C2:"), ("sym", "C3-.")):
                ax.plot(t, trace.ep[e][name].cumsum(0).flatten(1)[:, j].tolist(), style, label=f"EP {LABELS[e]}")
            ax.set_title(f"{name}[{j}]", fontsize=8)
            ax.tick_params(labelsize=6)
            if row == len(names) - 1:
                ax.set_xlabel("t (nudged step)", fontsize=7)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title or f"Cumulative EP updates vs −BPTT gradients (β = {trace.beta:g})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def layers_figure(rows: list[dict], title: str = ""):
    """Per-layer bar chart: relative RMS distance to BPTT, one-sided (+β, −β) vs symmetric, neurons and weights.

    Linear axis (a bar's length is the distance, 0 = exact), each bar labelled with its value so that
    small symmetric distances next to large one-sided ones stay readable; an infinite distance (BPTT
    exactly zero, EP not) is drawn as no bar labelled ∞."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = ("neurons", "weights")
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.6), squeeze=False)
    width = 0.27
    for ax, kind in zip(axes[0], kinds):
        sel = [r for r in rows if r["kind"] == kind]
        xs = list(range(len(sel)))
        top = max([r[f"rel_rms_{e}"] for r in sel for e in ESTIMATES if math.isfinite(r[f"rel_rms_{e}"])] + [1e-12])
        for i, (e, color) in enumerate((("plus", "C0"), ("minus", "C2"), ("sym", "C3"))):
            vals = [r[f"rel_rms_{e}"] for r in sel]
            bars = ax.bar([x + (i - 1) * width for x in xs], [v if math.isfinite(v) else 0.0 for v in vals], width,
                          color=color, label=LABELS[e])
            ax.bar_label(bars, labels=[f"{v:.2g}" if math.isfinite(v) else "∞" for v in vals], fontsize=6, padding=1)
        ax.set_xticks(xs, [f"layer {r['layer']}" for r in sel], fontsize=8)
        ax.set_ylim(0, 1.15 * top)
        ax.set_ylabel("rel. RMS distance to −BPTT (cumulative)", fontsize=8)
        ax.set_title(kind, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_layers(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Write :func:`layers_figure` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt
    fig = layers_figure(rows, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
