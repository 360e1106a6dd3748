"""Build an EP network's NIR graph, write it atomically, and rebuild the network from one.

Graph (names sort in processing order: HDF5 stores a group's members by name, and nirtorch
processes nodes in the order it reads them, see docs/export.md):

    input ──► layer01_drive ──► layer01_neuron ──► layer02_drive ──► layer02_neuron ──► … ──► readout ──► output
                                      ▲                                    │
                                      └────────── layer01_topdown ◄────────┘        (feedback "full")

    layerNN_drive    Affine (dense, flat) or Conv2d (grid): forward drive from the layer below
                     (the input for NN = 01), bias included: W s_{n-1} + b
    layerNN_neuron   IF (or LIF) with per-neuron arrays shaped like the layer's layout
    layerNN_topdown  Linear(W_{n+1}ᵀ) (flat) or Conv2d (grid, the adjoint): feedback from layer n+1
    readout_flatten  Flatten (grid layouts only), then readout = Affine(W_out, b_out) (cross-entropy);
                     with squared error the last neuron node feeds the output directly

Layouts and the coarse-grid convolutions are in :mod:`.layout`. Conv drive nodes also carry the
native (k×k) kernel in their metadata (``native_weight``): the exported (k+1)×(k+1) averaging
kernel cannot be inverted bit-exactly in float32, and import checks that the stored kernel
reproduces the node's weights exactly before using it.
"""
from __future__ import annotations

import copy
from pathlib import Path

import nir
import numpy as np
import torch

from rate_ref.layers import ConvPool
from rate_ref.network import EPNetwork

from .errors import ExportError
from .layout import (CoarseConv, Layout, check_exportable, coarse_conv, is_dense_flat, layouts, native_conv,
                     native_kernel)

DEFAULT_MAX_WEIGHTS = 2 ** 24   # entries per weight array (64 MiB in float32)


def name(n: int, role: str) -> str:
    """Node name of layer ``n`` (1-based): ``layer01_drive``, ``layer01_neuron``, ``layer01_topdown``."""
    return f"layer{n:02d}_{role}"


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().to(dtype).contiguous().numpy()


def _conv_node(cc: CoarseConv, lin: Layout, dtype, metadata: dict | None = None) -> nir.Conv2d:
    return nir.Conv2d(input_shape=tuple(lin.shape[1:]), weight=_np(cc.weight, dtype), stride=(cc.stride, cc.stride),
                      padding=tuple(cc.padding), dilation=(1, 1), groups=1, bias=_np(cc.bias, dtype),
                      metadata=metadata or {})


def neuron_node(shape: tuple[int, ...], neuron: dict) -> nir.NIRNode:
    """IF (θ, r = 1, v_reset = 0) or LIF (τ in steps, r = 1, v_leak = 0): per-neuron float arrays."""
    ones = np.ones(shape, dtype=np.float32)
    if neuron["kind"] == "lif":
        return nir.LIF(tau=ones * neuron["tau_mem"], r=ones, v_leak=0 * ones, v_threshold=ones * neuron["theta"],
                       v_reset=0 * ones)
    return nir.IF(r=ones, v_threshold=ones * neuron["theta"], v_reset=0 * ones)


def _check_size(node_name: str, arr: np.ndarray, max_weights: int, n: int, feedback: str) -> None:
    if arr.size > max_weights:
        hint = ("export with --feedback none (forward connections only, native strided convolutions), or raise "
                "--max-weights" if feedback == "full" else "raise --max-weights")
        raise ExportError(f"{node_name} (layer {n}) would hold {arr.size:,} weights, more than the limit of "
                          f"{max_weights:,} (--max-weights); {hint}")


def build_graph(net: EPNetwork, *, feedback: str, neuron: dict, metadata: dict,
                max_weights: int = DEFAULT_MAX_WEIGHTS, dtype=torch.float32) -> tuple[nir.NIRGraph, dict]:
    """The network's NIR graph and ``{node name: CoarseConv or (W, b)}`` of its connections.

    ``neuron``: ``{"kind": "if"|"lif", "theta": θ, "tau_mem": τ (steps, LIF)}``; ``feedback``:
    ``"full"`` (topdown nodes) or ``"none"`` (a feed-forward graph of the same weights).
    """
    if feedback not in ("full", "none"):
        raise ExportError(f"--feedback must be full or none, got {feedback!r}")
    check_exportable(net)
    if net.layers[0].weight.dtype != dtype:   # kernels are built in the file's dtype, as import rebuilds them
        net = copy.deepcopy(net).to(dtype)
    lin0, lays = layouts(net, feedback)
    nodes = {"input": nir.Input(input_type={"input": np.array(lin0.shape)})}
    edges, conns = [], {}
    prev_name, prev_layout = "input", lin0
    for i, layer in enumerate(net.layers):
        n, lay = i + 1, lays[i]
        drive, cell = name(n, "drive"), name(n, "neuron")
        if is_dense_flat(layer, prev_layout):
            w, b = layer.weight.detach(), layer.bias.detach()
            nodes[drive] = nir.Affine(weight=_np(w, dtype), bias=_np(b, dtype))
            conns[drive] = (w, b)
        else:
            cc = coarse_conv(native_conv(layer, prev_layout), prev_layout, lay, adjoint=feedback == "full" and i > 0)
            meta = {"native_weight": _np(layer.weight, dtype)} if isinstance(layer, ConvPool) else {}
            nodes[drive] = _conv_node(cc, prev_layout, dtype, meta)
            conns[drive] = cc
        _check_size(drive, nodes[drive].weight, max_weights, n, feedback)
        nodes[cell] = neuron_node(lay.shape, neuron)
        edges += [(prev_name, drive), (drive, cell)]
        if feedback == "full" and i > 0:
            top = name(n - 1, "topdown")
            if isinstance(conns[drive], CoarseConv):
                conns[top] = conns[drive].adjoint()
                nodes[top] = _conv_node(conns[top], lay, dtype)
            else:
                conns[top] = layer.weight.detach().t()
                nodes[top] = nir.Linear(weight=_np(conns[top], dtype))
            _check_size(top, nodes[top].weight, max_weights, n, feedback)
            edges += [(cell, top), (top, prev_name)]
        prev_name, prev_layout = cell, lay
    last, out_shape = _add_readout(net, nodes, edges, prev_name, prev_layout, dtype)
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    edges.append((last, "output"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    return graph, {"layouts": [lin0, *lays], "connections": conns}


def _add_readout(net: EPNetwork, nodes: dict, edges: list, top: str, lay: Layout, dtype) -> tuple[str, tuple]:
    """Readout Affine (columns permuted to the layout's neuron order), after a Flatten for grid
    layouts; returns (the node feeding the output, the output shape). Squared error: the top layer."""
    if net.readout is None:
        return top, lay.shape
    src = top
    if lay.factor is not None:
        nodes["readout_flatten"] = nir.Flatten(input_type={"input": np.array(lay.shape)}, start_dim=0, end_dim=-1)
        edges.append((top, "readout_flatten"))
        src = "readout_flatten"
    w = net.readout.weight.detach()[:, lay.native_index()]
    nodes["readout"] = nir.Affine(weight=_np(w, dtype), bias=_np(net.readout.bias, dtype))
    edges.append((src, "readout"))
    return "readout", (net.n_classes,)


# --- reading back ---------------------------------------------------------------------------------
def read_graph(path: str | Path) -> nir.NIRGraph:
    """``nir.read`` with errors that name the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist")
    try:
        return nir.read(path)
    except OSError as e:   # h5py: not an HDF5 file, truncated, unreadable
        raise ExportError(f"{path} cannot be read as HDF5 ({e}); is it a complete .nir file?") from None
    except Exception as e:  # HDF5 but not a NIR graph, or a NIR graph with inconsistent shapes
        raise ExportError(f"{path} is not a valid NIR graph ({type(e).__name__}: {e})") from None


def _node(graph: nir.NIRGraph, key: str, kinds: tuple, source: str):
    node = graph.nodes.get(key)
    if node is None:
        raise ExportError(f"{source}: node '{key}' is missing; the graph does not match the network in its metadata")
    if not isinstance(node, kinds):
        raise ExportError(f"{source}: node '{key}' is a {type(node).__name__}, expected "
                          f"{' or '.join(k.__name__ for k in kinds)}")
    return node


def _shape_check(source: str, key: str, what: str, got, need) -> None:
    if tuple(got) != tuple(need):
        raise ExportError(f"{source}: shape mismatch in '{key}': {what} has shape {tuple(got)}, the network in the "
                          f"metadata needs {tuple(need)} (the file belongs to another architecture or was modified)")


def _unfold_avg_kernel(wbar: torch.Tensor, k: int, stored: np.ndarray | None) -> torch.Tensor:
    """w with ConvPool._avg_kernel(w) = w̄: the stored native kernel when it reproduces w̄ bit for bit,
    else the least-squares solution (float64, then rounded: not guaranteed bit-exact)."""
    if stored is not None:
        w = torch.from_numpy(np.asarray(stored)).to(wbar.dtype)
        if tuple(w.shape[-2:]) == (k, k) and torch.equal(ConvPool._avg_kernel(w), wbar):
            return w
    eye = torch.eye(k * k, dtype=torch.float64).view(k * k, 1, k, k)
    A = ConvPool._avg_kernel(eye).reshape(k * k, -1).t()                 # ((k+1)², k²)
    sol = torch.linalg.lstsq(A, wbar.double().reshape(-1, (k + 1) ** 2).t()).solution
    return sol.t().reshape(*wbar.shape[:2], k, k).to(wbar.dtype)


def load_weights_from_graph(net: EPNetwork, graph: nir.NIRGraph, feedback: str, source: str) -> None:
    """Fill ``net``'s parameters from the graph's drive and readout nodes (shapes checked, named)."""
    lin0, lays = layouts(net, feedback)
    prev = lin0
    params = {}
    for i, layer in enumerate(net.layers):
        key = name(i + 1, "drive")
        if is_dense_flat(layer, prev):
            node = _node(graph, key, (nir.Affine,), source)
            _shape_check(source, key, "weight", node.weight.shape, layer.weight.shape)
            params[f"layers.{i}.weight"], params[f"layers.{i}.bias"] = node.weight, node.bias
        else:
            node = _node(graph, key, (nir.Conv2d,), source)
            nc = native_conv(layer, prev)
            expect = coarse_conv(nc, prev, lays[i], adjoint=feedback == "full" and i > 0)
            _shape_check(source, key, "weight", node.weight.shape, expect.weight.shape)
            cc = CoarseConv(torch.from_numpy(np.asarray(node.weight)), torch.from_numpy(np.asarray(node.bias)),
                            expect.stride, expect.padding)
            kernel = native_kernel(cc, tuple(nc.kernel.shape), nc.stride, nc.padding, prev, lays[i])
            if isinstance(layer, ConvPool) and layer.pool == "avg":
                kernel = _unfold_avg_kernel(kernel, layer.kernel, node.metadata.get("native_weight"))
            params[f"layers.{i}.weight"] = kernel.reshape(layer.weight.shape)
            params[f"layers.{i}.bias"] = cc.bias[::(lays[i].factor or 1) ** 2]
        prev = lays[i]
    if net.readout is not None:
        node = _node(graph, "readout", (nir.Affine,), source)
        _shape_check(source, "readout", "weight", node.weight.shape, net.readout.weight.shape)
        w = torch.empty_like(net.readout.weight)
        w[:, prev.native_index()] = torch.from_numpy(np.asarray(node.weight)).to(w.dtype)
        params["readout.weight"], params["readout.bias"] = w, node.bias
    state = {k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).to(net.layers[0].weight.dtype)
             for k, v in params.items()}
    net.load_state_dict(state)


def compare_graphs(a: nir.NIRGraph, b: nir.NIRGraph, source: str) -> None:
    """Raise :class:`ExportError` naming the first node whose type, edges or arrays differ."""
    if set(a.nodes) != set(b.nodes):
        raise ExportError(f"{source}: nodes {sorted(set(a.nodes) ^ set(b.nodes))} differ from the graph the "
                          f"network exports")
    if sorted(map(tuple, a.edges)) != sorted(map(tuple, b.edges)):
        raise ExportError(f"{source}: the edges differ from the graph the network exports")
    for key, na in a.nodes.items():
        nb = b.nodes[key]
        if type(na) is not type(nb):
            raise ExportError(f"{source}: node '{key}' is a {type(na).__name__}, expected {type(nb).__name__}")
        for field in ("weight", "bias", "v_threshold", "v_reset", "r", "tau", "v_leak"):
            va, vb = getattr(na, field, None), getattr(nb, field, None)
            if va is None and vb is None:
                continue
            va, vb = np.asarray(va), np.asarray(vb)
            if va.shape != vb.shape or not np.array_equal(va, vb):
                diff = (f"max |Δ| = {np.abs(va.astype(np.float64) - vb.astype(np.float64)).max():.3g}"
                        if va.shape == vb.shape else f"shape {va.shape} vs {vb.shape}")
                raise ExportError(f"{source}: node '{key}'.{field} differs from what the rebuilt network exports "
                                  f"({diff})")
