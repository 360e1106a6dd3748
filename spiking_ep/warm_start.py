"""Warm-started free phases: one persistent state per training example (rate or spiking).

With ``method.warm_start: persistent`` the free phase of an example starts from where its
previous free phase ended (the last epoch it was seen), instead of from zero: the "persistent
particles" of Scellier & Bengio (2017). Between two visits the weights have moved by one
epoch of updates, so the stored state is close to the new fixed point and the free phase
needs fewer steps to settle; the nudged phases start from the free phase's end as always.
BPTT warm-starts the graph-free part of its free phase the same way.

Rate models store the state s_n of every layer (float16: s lies in [0, 1], so half precision
keeps ~5e-4), 2 bytes per neuron per example: 1.4 GB for the small CIFAR-10 convnet
(32-64-128, 14,336 neurons) and its 50,000 examples.

Spiking models store per example and per layer n (shape s_n): the membrane v (float16: it lies in
[v_floor, v_ceiling]·θ, so half precision keeps ~1e-3 θ), the last spikes (bool) and, with a
synaptic filter, the filtered current (float16). Traces and the output rate trace restart at
zero: they do not act on the free dynamics (the nudge reads the rate trace only in the nudged
phases, which start from the free phase's end state). Examples not seen yet hold zeros, which
is exactly the cold start. Memory: (2 + 1 [+ 2]) bytes × Σ_n |s_n| × examples, e.g. 1.7 GB
for the MNIST conv 32-64 net and its 60,000 examples; the states go into the checkpoint, so
a resumed run continues with the same warm starts.

Inference (evaluation) always starts from zero: test examples have no previous state.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from rate_ref.network import EPNetwork, in_format, memory_format

from .checkpoint import CheckpointError
from .dynamics import SpikingState


class Particles:
    """Persistent free-phase states of ``n`` examples for ``net``; see the module docstring.

    ``kind="rate"`` keeps the rate state s (a tuple of tensors, one per layer); ``kind="spiking"``
    keeps membranes, last spikes and (``synapses``) filtered currents of a :class:`SpikingState`.
    """

    KEYS = {"rate": ("s",), "spiking": ("v", "z", "syn")}

    def __init__(self, net: EPNetwork, n: int, *, kind: str = "spiking", synapses: bool = False):
        if kind not in self.KEYS:
            raise ValueError(f"kind must be 'rate' or 'spiking', got {kind!r}")
        self.kind = kind
        shapes = [tuple(s) for s in net.state_shapes]
        spiking = kind == "spiking"
        self.s = [] if spiking else [torch.zeros((n, *s), dtype=torch.float16) for s in shapes]
        self.v = [torch.zeros((n, *s), dtype=torch.float16) for s in shapes] if spiking else []
        self.z = [torch.zeros((n, *s), dtype=torch.bool) for s in shapes] if spiking else []
        self.syn = [torch.zeros((n, *s), dtype=torch.float16) for s in shapes] if spiking and synapses else []

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.s, *self.v, *self.z, *self.syn))

    @property
    def n(self) -> int:
        return (self.s or self.v)[0].shape[0]

    def start_state(self, idx: Tensor, like: Tensor):
        """The stored states of examples ``idx`` on ``like``'s device and dtype: a tuple of layer
        states (rate) or a :class:`SpikingState` (spiking)."""
        fmt = memory_format(like)

        def load(ts):
            return tuple(in_format(t[idx].to(like), fmt) for t in ts)
        if self.kind == "rate":
            return load(self.s)
        v, z, syn = load(self.v), load(self.z), load(self.syn)
        zeros = tuple(torch.zeros_like(t) for t in v)
        return SpikingState(v=v, spikes=z, syn=syn, trace=zeros, rate=zeros[-1])

    def store(self, idx: Tensor, state) -> None:
        """Keep the free phase's end ``state`` of examples ``idx`` (a rate state tuple or a SpikingState)."""
        if self.kind == "rate":
            for dst, src in zip(self.s, state):
                dst[idx] = src.detach().to("cpu", torch.float16)
            return
        for dst, src in zip(self.v, state.v):
            dst[idx] = src.detach().to("cpu", torch.float16)
        for dst, src in zip(self.z, state.spikes):
            dst[idx] = src.detach().to("cpu") > 0
        for dst, src in zip(self.syn, state.syn):
            dst[idx] = src.detach().to("cpu", torch.float16)

    def state_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.KEYS[self.kind]}

    def load_state_dict(self, sd: dict | None, source: str) -> None:
        """Restore :meth:`state_dict`'s output; ``sd`` None (a cold run's checkpoint) is an error naming ``source``."""
        if sd is None:
            raise CheckpointError(f"{source}: has no warm-start states, but the config asks for "
                                  f"method.warm_start: persistent")
        for key in self.KEYS[self.kind]:
            mine, theirs = getattr(self, key), sd.get(key)
            if theirs is None or len(theirs) != len(mine) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
                raise CheckpointError(f"{source}: the warm-start states '{key}' do not match this network and "
                                      f"dataset (expected {[tuple(a.shape) for a in mine]}, found "
                                      f"{None if theirs is None else [tuple(b.shape) for b in theirs]})")
        for key in self.KEYS[self.kind]:
            setattr(self, key, list(sd[key]))


def describe(p: Particles) -> str:
    per = sum(math.prod(t.shape[1:]) for t in (p.s or p.v))
    return (f"warm start: persistent {p.kind} free-phase states for {p.n} examples × {per} neurons "
            f"({p.nbytes / 2**20:.0f} MiB)")
