"""What a training run is built from, before the loop: the device, the data (checked against the
model's input shape), its normalisation, the per-layer SGD groups and schedule, and the angles
between forward and feedback weights that metrics.csv reports."""
from __future__ import annotations

import math

import torch

import rate_ref as R
from rate_ref.config import ConfigError

from . import data as D
from .config import Config


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available (use cpu or auto)")
    return dev


def load_data(cfg: Config) -> D.Dataset:
    """Load the dataset and check that its images fit ``model.input_shape``."""
    dc = cfg.data
    ds = D.load_dataset(dc.name, dc.root, allow_embedded=dc.allow_embedded,
                        train_subset=dc.train_subset, test_subset=dc.test_subset)
    shape = tuple(ds.train_x.shape[1:])
    if shape != tuple(cfg.model.input_shape):
        raise ConfigError(f"model.input_shape: {list(cfg.model.input_shape)} does not match the {dc.name} "
                          f"images {list(shape)}")
    return ds


def normalisation(cfg: Config, ds: D.Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for :func:`spiking_ep.data.normalize`: the dataset's (or ``data.std``
    where given), std scaled by ``data.std_scale``."""
    std = cfg.data.std or ds.std
    return ds.mean, tuple(s * cfg.data.std_scale for s in std)


def param_groups(net: R.EPNetwork, cfg: Config) -> list[dict]:
    """One SGD group per layer (W, b, B) and one for the readout, with the per-layer learning rates."""
    groups = [{"params": list(layer.parameters()), "lr": lr, "name": f"layer{i + 1}"}
              for i, (layer, lr) in enumerate(zip(net.layers, cfg.optim.lrs))]
    if net.readout is not None:
        groups.append({"params": list(net.readout.parameters()), "lr": cfg.optim.lrs[-1], "name": "readout"})
    return groups


def make_optimizer(net, cfg: Config):
    oc = cfg.optim
    opt = torch.optim.SGD(param_groups(net, cfg), lr=oc.lrs[0], momentum=oc.momentum,
                          weight_decay=oc.weight_decay, nesterov=oc.nesterov)
    sched = None
    if oc.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=oc.T_max or cfg.train.epochs, eta_min=oc.eta_min)
    return opt, sched


def fb_angles(net) -> dict:
    """Angle (degrees) between forward and backward weights per unidirectional layer."""
    out = {}
    for i, layer in enumerate(net.layers):
        if layer.B is not None:
            w, b = layer.weight.detach().flatten(), layer.B.detach().flatten()
            cos = (w @ b / (w.norm() * b.norm())).clamp(-1, 1).item()
            out[f"angle_layer{i + 1}"] = math.degrees(math.acos(cos))
    return out
