"""Shared helpers for the spiking benchmarks: a small MNIST batch and the rate reference's fixed point."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

import rate_ref as R

MNIST_DIRS = [os.environ.get("SPIKING_EP_DATA", ""), "/work/shared/data/mnist", "/work/shared/data"]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist(split: str = "train", n: int | None = None):
    """(images (n, 1, 28, 28) float in [0, 1], labels (n,)) from the gzipped IDX files."""
    prefix = "train" if split == "train" else "t10k"
    for d in MNIST_DIRS:
        p = Path(d) / f"{prefix}-images-idx3-ubyte.gz"
        if d and p.is_file():
            x = _idx(p)[:n].astype(np.float32) / 255.0
            y = _idx(Path(d) / f"{prefix}-labels-idx1-ubyte.gz")[:n].astype(np.int64)
            return torch.from_numpy(x)[:, None], torch.from_numpy(y)
    raise FileNotFoundError("MNIST IDX files not found")


def dense_net(hidden=(256, 128), seed=0, loss="cross_entropy", dtype=torch.float64):
    torch.manual_seed(seed)
    layers = [{"type": "dense", "features": h} for h in hidden]
    if loss == "squared_error":
        layers.append({"type": "dense", "features": 10})
    return R.build_network({"input_shape": [1, 28, 28], "layers": layers, "loss": loss, "theta": 1.0}).to(dtype)


def conv_net(seed=0, loss="cross_entropy", dtype=torch.float64):
    torch.manual_seed(seed)
    layers = [{"type": "conv", "channels": 16, "kernel": 5, "padding": 2, "pool": "avg"},
              {"type": "conv", "channels": 32, "kernel": 5, "padding": 2, "pool": "avg"}]
    if loss == "squared_error":
        layers.append({"type": "dense", "features": 10})
    return R.build_network({"input_shape": [1, 28, 28], "layers": layers, "loss": loss, "theta": 1.0}).to(dtype)


def fixed_point(net, x, steps=400, beta=0.0, y=None, state=None):
    with torch.no_grad():
        return R.relax(net, x, steps=steps, beta=beta, y=y, state=state, mode="evenodd")


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


def accuracy_rate(net, x, y, T1=100, mode="evenodd"):
    with torch.no_grad():
        s = R.relax(net, x, steps=T1, mode=mode)
    return (R.predict(net, s).argmax(1) == y).double().mean().item()
