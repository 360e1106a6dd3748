"""Plain HDF5 export (``--format h5``) for custom toolchains, and loading it back.

Layout (every array in the network's native shapes, batch dimension omitted; docs/export.md):

    /                         attrs: format = "spiking-ep/h5", format_version, T1, window, feedback,
                              neuron, theta, schedule, step_convention, readout, input_mean/std, …
    /config_yaml              the run's resolved config (string)
    /layers/layerNN           attrs: type ("dense" | "conv"), in_shape, out_shape, feedback
                              ("transpose": layer NN−1 also receives Wᵀ·s_NN each step, "none");
                              conv: kernel, padding, pool, stride (2 with pool avg, else 1)
        weight, bias          dense: W (F, prod(in_shape)), b (F,);  conv: W (C_out, C_in, k, k), b (C_out,)
        effective_weight      conv with pool avg: the (k+1)×(k+1) kernel w̄ with
                              drive = conv2d(s, w̄, b, stride=2, padding) = avgpool2(conv2d(s, W, b, padding))
        neuron/               attrs: model ("IF" | "LIF"), reset ("zero"); per-neuron arrays shaped
                              out_shape: v_threshold, v_reset, r (and tau, v_leak for LIF; τ in steps)
    /readout                  weight (n_classes, prod(out_shape of the last layer)), bias (cross-entropy only)
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

import rate_ref as R
from rate_ref.layers import ConvPool

from .errors import ExportError
from .files import write_atomic

H5_FORMAT = "spiking-ep/h5"


def _arr(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _write(f: h5py.File, net, neuron: dict, meta: dict) -> None:
    f.attrs["format"] = H5_FORMAT
    for key, value in meta.items():
        if key == "config_yaml":
            f.create_dataset("config_yaml", data=value, dtype=h5py.string_dtype())
        elif key != "format":
            f.attrs[key] = value
    feedback = meta.get("feedback", "full")
    for i, layer in enumerate(net.layers):
        g = f.create_group(f"layers/layer{i + 1:02d}")
        conv = isinstance(layer, ConvPool)
        g.attrs.update({"type": "conv" if conv else "dense", "in_shape": list(layer.in_shape),
                        "out_shape": list(layer.out_shape),
                        "feedback": "transpose" if feedback == "full" and i > 0 else "none"})
        g.create_dataset("weight", data=_arr(layer.weight), compression="gzip")
        g.create_dataset("bias", data=_arr(layer.bias), compression="gzip")
        if conv:
            g.attrs.update({"kernel": layer.kernel, "padding": layer.padding, "pool": layer.pool,
                            "stride": 2 if layer.pool == "avg" else 1})
            if layer.pool == "avg":
                g.create_dataset("effective_weight", data=_arr(layer._avg_kernel(layer.weight.detach())),
                                 compression="gzip")
        _write_neuron(g.create_group("neuron"), layer.out_shape, neuron)
    if net.readout is not None:
        g = f.create_group("readout")
        g.create_dataset("weight", data=_arr(net.readout.weight), compression="gzip")
        g.create_dataset("bias", data=_arr(net.readout.bias), compression="gzip")


def _write_neuron(g: h5py.Group, shape, neuron: dict) -> None:
    ones = np.ones(shape, dtype=np.float32)
    g.attrs.update({"model": neuron["kind"].upper(), "reset": "zero"})
    g.create_dataset("v_threshold", data=ones * neuron["theta"])
    g.create_dataset("v_reset", data=0 * ones)
    g.create_dataset("r", data=ones)
    if neuron["kind"] == "lif":
        g.create_dataset("tau", data=ones * neuron["tau_mem"])
        g.create_dataset("v_leak", data=0 * ones)


def write_h5(path: str | Path, net, neuron: dict, meta: dict) -> int:
    """Write atomically, check by loading it back (weights bit-equal), return the size in bytes."""
    from .nir_graph import check_exportable
    check_exportable(net)

    def check(tmp: Path) -> None:
        back = read_h5(tmp)
        for (k, a), b in zip(net.state_dict().items(), back.net.state_dict().values()):
            if not torch.equal(a.cpu().float(), b):
                raise ExportError(f"{path}: '{k}' did not survive writing")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            _write(f, net, neuron, meta)

    return write_atomic(path, write, check)


def _dataset(f, key: str, source: str) -> np.ndarray:
    if key not in f:
        raise ExportError(f"{source}: '{key}' is missing")
    return f[key][()]


def read_h5(path: str | Path, *, config=None):
    """Rebuild the network (float32) from our HDF5 layout; shapes are checked and named."""
    from .pipeline import Imported, _config_from_yaml
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ExportError(f"{path} cannot be read as HDF5 ({e})") from None
    with f:
        if f.attrs.get("format") != H5_FORMAT:
            raise ExportError(f"{path} is not a spiking-ep HDF5 export (attribute format != {H5_FORMAT!r})")
        meta = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        raw = _dataset(f, "config_yaml", str(path))
        cfg = config or _config_from_yaml(raw.decode() if isinstance(raw, bytes) else str(raw), str(path))
        meta["config_yaml"] = raw.decode() if isinstance(raw, bytes) else str(raw)
        net = R.build_network(cfg.model)
        keys = {f"layers.{i}.{part}": f"layers/layer{i + 1:02d}/{part}"
                for i in range(len(net.layers)) for part in ("weight", "bias")}
        if net.readout is not None:
            keys.update({"readout.weight": "readout/weight", "readout.bias": "readout/bias"})
        state = {k: _dataset(f, where, str(path)) for k, where in keys.items()}
        n_layers_file = len(f["layers"]) if "layers" in f else 0
    if n_layers_file != len(net.layers):
        raise ExportError(f"{path}: {n_layers_file} layers in the file, the architecture has {len(net.layers)}")
    own = net.state_dict()
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ExportError(f"{path}: shape mismatch in '{keys[k]}': {tuple(v.shape)} in the file, the network "
                              f"needs {tuple(own[k].shape)}")
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(own[k].dtype) for k, v in state.items()})
    return Imported(net=net, config=cfg, metadata=meta)
