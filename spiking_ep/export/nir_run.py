"""Execute an exported NIR graph with nirtorch, through our own node map.

nirtorch 2.6's default Affine mapping leaves the bias random (it assigns ``module.weight.bias``),
so every node type we write is mapped here. One call of the GraphModule is one time step
(dt = 1): ``out, state = module(x, state)``. nirtorch processes the nodes in the order the
graph lists them (HDF5: by name) and feeds a node that closes a cycle the value its source had
at the end of the previous call; with our node names this is the ``forward`` schedule (layer n
reads layer n−1's spikes of this step and layer n+1's of the previous step, docs/export.md).

Neuron nodes, one step with input current I (charge per step, units of θ):

    IF:   v ← v + r·I;                               z = H(v − θ);  v ← v_reset where z
    LIF:  v ← v_leak + (v − v_leak)·exp(−1/τ) + r·I;  z = H(v − θ);  v ← v_reset where z

(τ in steps; with r = 1, v_leak = 0, v_reset = 0 this is ``spiking_ep.neurons`` with
``reset="zero"`` and no membrane bounds). Their state is ``NeuronState(v, z)``, so the spikes of
every layer can be read from the state dict the module returns.
"""
from __future__ import annotations

from typing import NamedTuple

import nir
import nirtorch
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NeuronState(NamedTuple):
    v: Tensor   # membrane after reset, shaped (N, *layout)
    z: Tensor   # spikes of this step, {0, 1}


def _buf(module: nn.Module, key: str, arr) -> None:
    module.register_buffer(key, torch.from_numpy(np.array(arr, dtype=np.float64)))


class IFNode(nn.Module):
    def __init__(self, node: nir.IF):
        super().__init__()
        _buf(self, "r", node.r)
        _buf(self, "v_threshold", node.v_threshold)
        _buf(self, "v_reset", node.v_reset)
        self.unit_r = bool(np.all(np.asarray(node.r) == 1))

    def integrate(self, v: Tensor | None, i: Tensor) -> Tensor:
        return i if v is None else v + i

    def forward(self, x: Tensor, state: NeuronState | None = None):
        i = x if self.unit_r else x * self.r
        v = self.integrate(None if state is None else state.v, i)
        z = (v > self.v_threshold).to(v.dtype)
        v = torch.where(z.bool(), self.v_reset.to(v.dtype), v)
        return z, NeuronState(v, z)


class LIFNode(IFNode):
    def __init__(self, node: nir.LIF):
        super().__init__(node)
        # dt = 1 step: the exact decay of τ dv/dt = v_leak − v over one step
        self.register_buffer("decay", torch.exp(-1.0 / torch.from_numpy(np.array(node.tau, dtype=np.float64))))
        _buf(self, "v_leak", node.v_leak)
        self.zero_leak = bool(np.all(np.asarray(node.v_leak) == 0))

    def integrate(self, v: Tensor | None, i: Tensor) -> Tensor:
        if v is None:
            v = torch.zeros_like(i)
        if self.zero_leak:
            return v * self.decay + i
        return self.v_leak + (v - self.v_leak) * self.decay + i


class AffineNode(nn.Module):
    """y = W x + b (x flat, batch first): ``F.linear`` as ``rate_ref.layers.Dense`` computes it."""

    def __init__(self, node: nir.Affine):
        super().__init__()
        _buf(self, "weight", node.weight)
        _buf(self, "bias", node.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.flatten(1), self.weight, self.bias)


class LinearNode(nn.Module):
    """y = W x with the NIR weight W (out, in); computed as x @ Wᵀ from a contiguous Wᵀ, which is the
    layout and the operation ``Dense.feedback_drive`` uses (s @ W_n), so the sums round alike."""

    def __init__(self, node: nir.Linear):
        super().__init__()
        _buf(self, "weight_t", np.ascontiguousarray(np.asarray(node.weight).T))

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight_t


class Conv2dNode(nn.Module):
    def __init__(self, node: nir.Conv2d):
        super().__init__()
        _buf(self, "weight", node.weight)
        _buf(self, "bias", node.bias)
        pair = lambda v: tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))
        self.stride, self.padding, self.dilation = pair(node.stride), pair(node.padding), pair(node.dilation)
        self.groups = int(node.groups)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class FlattenNode(nn.Module):
    """NIR shapes have no batch dimension: NIR start_dim 0 is torch start_dim 1."""

    def __init__(self, node: nir.Flatten):
        super().__init__()
        self.start = int(node.start_dim) + 1 if int(node.start_dim) >= 0 else int(node.start_dim)
        self.end = int(node.end_dim) + 1 if int(node.end_dim) >= 0 else int(node.end_dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(x, self.start, self.end)


NODE_MAP = {nir.IF: IFNode, nir.LIF: LIFNode, nir.Affine: AffineNode, nir.Linear: LinearNode,
            nir.Conv2d: Conv2dNode, nir.Flatten: FlattenNode,
            nir.Input: lambda node: nn.Identity(), nir.Output: lambda node: nn.Identity()}


def load_module(graph: nir.NIRGraph, dtype: torch.dtype = torch.float64) -> torch.fx.GraphModule:
    """The graph as a nirtorch GraphModule with our node map (one call = one time step)."""
    return nirtorch.nir_to_torch(graph, NODE_MAP, dtype=dtype)


def run(module, x: Tensor, *, steps: int, window: int, on_step=None) -> Tensor:
    """Run ``steps`` steps from the zero state with the constant input ``x`` (graph input layout);
    return the output summed over the last ``window`` steps. ``on_step(t, state)`` sees each state."""
    state, total = None, None
    with torch.no_grad():
        for t in range(steps):
            out, state = module(x, state)
            if t >= steps - window:
                total = out.clone() if total is None else total + out
            if on_step is not None:
                on_step(t, state)
    return total
