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
