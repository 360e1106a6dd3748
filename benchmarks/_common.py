"""Shared helpers for the spiking benchmarks: normalised image batches, cosine similarity, a quick rate-EP trainer."""
from __future__ import annotations

import dataclasses

import torch

import rate_ref as R
from spiking_ep.data import load_dataset, normalize
from spiking_ep.prepare import load_data, normalisation


def mnist(split: str = "train", n: int | None = None):
    """(normalised images (n, 1, 28, 28) float32, labels (n,)) from the project's MNIST loader
    (``SPIKING_EP_DATA`` or the default data folder; see ``spiking_ep.data.load_dataset``)."""
    ds = load_dataset("mnist", train_subset=n if split == "train" else None,
                      test_subset=n if split != "train" else None)
    x, y = (ds.train_x, ds.train_y) if split == "train" else (ds.test_x, ds.test_y)
    return normalize(x, ds.mean, ds.std), y


def first_images(cfg, n: int = 64):
    """The first n training images of a config's dataset, normalised as the trainer does
    (``data.std_scale`` included), and their labels."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_subset=n, test_subset=1))
    ds = load_data(cfg)
    mean, std = normalisation(cfg, ds)
    return normalize(ds.train_x, mean, std), ds.train_y


def cosine(a, b):
    a, b = a.flatten(), b.flatten()
    return (a @ b / (a.norm() * b.norm() + 1e-30)).item()


def train_rate_ep(net, x, y, *, epochs=1, batch=64, lrs=None, beta=0.5, T1=20, T2=10, mode="evenodd",
                  momentum=0.9, seed=0, log=None):
    """A few epochs of rate-based symmetric EP + SGD (a quick stand-in for the trainer)."""
    n_groups = len(net.layers) + (1 if net.readout is not None else 0)
    lrs = lrs or [0.05] * n_groups
    groups = [{"params": list(l.parameters()), "lr": lr} for l, lr in zip(net.layers, lrs)]
    if net.readout is not None:
        groups.append({"params": list(net.readout.parameters()), "lr": lrs[-1]})
    opt = torch.optim.SGD(groups, lr=lrs[0], momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i:i + batch]
            grads = R.ep_gradients(net, x[idx], y[idx], beta=beta, T1=T1, T2=T2, mode=mode)
            for k, v in grads.items():
                params[k].grad = v
            opt.step()
        if log:
            log(f"epoch {ep + 1} done")
    return net


# --- timing harness shared by the speed benchmarks ---------------------------------------------
def alternating(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions called in turn ``repeats`` times (after
    ``warmup`` calls each), so that a change in machine load hits every variant alike."""
    import time
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return out


def conv_throughput(threads: int, seconds: float = 2.0) -> float:
    """This machine's measured convolution throughput (GFLOP/s) with ``threads`` torch threads: a
    64-image, 64→128-channel 3×3 convolution on 16×16 channels-last maps, repeated for ~``seconds``.
    The physical limit the step loops are compared against."""
    import time
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    x = torch.rand(64, 64, 16, 16).contiguous(memory_format=torch.channels_last)
    w = torch.rand(128, 64, 3, 3).contiguous(memory_format=torch.channels_last)
    flops = 2 * 64 * 128 * 64 * 9 * 16 * 16
    F.conv2d(x, w, padding=1)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        F.conv2d(x, w, padding=1)
        n += 1
    return flops * n / (time.perf_counter() - t0) / 1e9


def save_result(name: str, payload: dict, table: list[str], title: str, out_dir: str = "results/benchmarks") -> None:
    """Write ``<out_dir>/<name>.json`` (payload + provenance: command, commit, hardware, threads,
    load, versions, date) and ``<out_dir>/<name>.md`` (title, the markdown table, provenance)."""
    import json
    import sys
    from pathlib import Path

    from spiking_ep.runinfo import provenance, provenance_line
    prov = provenance("cpu")
    prov["command"] = " ".join(["python"] + sys.argv)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({**payload, "provenance": prov}, indent=1) + "\n")
    text = "\n".join([f"# {title}", "", *table, "", provenance_line(prov), ""])
    (out / f"{name}.md").write_text(text)
    print(text)


def median(xs):
    import statistics
    return statistics.median(xs)


def load_net(config: str, weights: str | None = None, pool: str | None = None):
    """(config, network) from a config file (optionally another pooling, and trained weights)."""
    from rate_ref.config import to_dict
    from spiking_ep.checkpoint import load_weights
    from spiking_ep.config import config_from_dict, load_config
    cfg = load_config(config)
    if pool is not None:
        tree = to_dict(cfg)
        for lc in tree["model"]["layers"]:
            if lc["type"] == "conv":
                lc["pool"] = pool
        tree["model"]["kind"] = "rate"
        cfg = config_from_dict(tree, config)
    torch.manual_seed(cfg.train.seed)
    net = R.build_network(cfg.model)
    if weights:
        load_weights(net, weights)
    return cfg, net
