"""Tiny float64 networks shared by the gradient-check tests."""
import torch

import rate_ref as R

TINY = {
    "dense": {"input_shape": [1, 6, 6], "layers": [{"type": "dense", "features": 7}, {"type": "dense", "features": 5}]},
    "conv_max": {"input_shape": [2, 8, 8], "layers": [{"type": "conv", "channels": 3, "pool": "max"},
                                                      {"type": "conv", "channels": 4, "pool": "max"},
                                                      {"type": "dense", "features": 6}]},
    "conv_avg": {"input_shape": [2, 8, 8], "layers": [{"type": "conv", "channels": 3, "pool": "avg"},
                                                      {"type": "conv", "channels": 4, "kernel": 3, "padding": 0, "pool": "avg"},
                                                      {"type": "dense", "features": 6}]},
}


def model_cfg(kind, loss="cross_entropy", theta=1.0, unidirectional=False, n_classes=None):
    """A tiny model config; with squared error the last layer becomes the output (6 units by default)."""
    n_classes = n_classes or (6 if loss == "squared_error" else 4)
    cfg = dict(TINY[kind], loss=loss, n_classes=n_classes, theta=theta, unidirectional=unidirectional)
    if loss == "squared_error":
        cfg["layers"] = cfg["layers"][:-1] + [{"type": "dense", "features": n_classes}]
    return cfg


def make(kind, loss="cross_entropy", seed=0, theta=1.0, unidirectional=False, x_scale=1.0, batch=5, n_classes=None):
    """(net, x, y) in float64, seeded."""
    torch.manual_seed(seed)
    cfg = model_cfg(kind, loss, theta, unidirectional, n_classes)
    net = R.build_network(cfg).double()
    x = x_scale * torch.rand(batch, *cfg["input_shape"], dtype=torch.float64)
    y = torch.randint(0, cfg["n_classes"], (batch,))
    return net, x, y


# Networks for the spiking tests (average pooling: spiking models refuse max pooling).
SPIKING_NETS = {
    "dense": {"input_shape": [1, 8, 8], "layers": [{"type": "dense", "features": 24}, {"type": "dense", "features": 12}]},
    "conv": {"input_shape": [2, 8, 8], "layers": [{"type": "conv", "channels": 4, "pool": "avg"},
                                                  {"type": "conv", "channels": 6, "pool": "avg"},
                                                  {"type": "dense", "features": 8}]},
}


# (init_scale, seed) per network and loss: rates spread over (0, 1) (mean 0.2–0.3) and the rate
# model has a single fixed point (checked in the tests; larger weights often make several, and the
# spiking network may then settle in another one, which is no error of the spiking translation)
UNIQUE = {("dense", "cross_entropy"): (1.5, 0), ("dense", "squared_error"): (1.5, 1),
          ("conv", "cross_entropy"): (2.0, 0), ("conv", "squared_error"): (1.5, 1)}


def make_spiking(kind, loss="cross_entropy", batch=16, dtype=torch.float64):
    """(net, x, y) for the spiking tests: average pooling, θ = 1, a unique rate fixed point."""
    init_scale, seed = UNIQUE[kind, loss]
    torch.manual_seed(seed)
    cfg = dict(SPIKING_NETS[kind], loss=loss, n_classes=5, theta=1.0, init_scale=init_scale)
    if loss == "squared_error":
        cfg["layers"] = cfg["layers"] + [{"type": "dense", "features": 5}]
    net = R.build_network(cfg).to(dtype)
    x = torch.rand(batch, *cfg["input_shape"], dtype=dtype)
    y = torch.randint(0, 5, (batch,))
    return net, x, y
