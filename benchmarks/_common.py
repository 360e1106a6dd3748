"""Shared helpers for the spiking benchmarks: normalised image batches, cosine similarity, a quick rate-EP trainer."""
from __future__ import annotations

import dataclasses

import torch

import rate_ref as R
from spiking_ep.data import load_dataset, normalize
from spiking_ep.train import load_data, normalisation


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
