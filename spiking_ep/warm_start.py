"""Warm-started free phases: one persistent spiking state per training example.

With ``spiking.warm_start: persistent`` the free phase of an example starts from where its
previous free phase ended (the last epoch it was seen), instead of from zero: the "persistent
particles" of Scellier & Bengio (2017). Between two visits the weights have moved by one
epoch of updates, so the stored state is close to the new fixed point and the free phase
needs fewer steps to settle; the nudged phases start from the free phase's end as always.

Stored per example and per layer n (shape s_n): the membrane v (float16: it lies in
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

from rate_ref.network import EPNetwork

from .checkpoint import CheckpointError
from .dynamics import SpikingState


class Particles:
    """Persistent free-phase states of ``n`` examples for ``net``; see the module docstring."""

    def __init__(self, net: EPNetwork, n: int, *, synapses: bool = False):
        shapes = [tuple(s) for s in net.state_shapes]
        self.v = [torch.zeros((n, *s), dtype=torch.float16) for s in shapes]
        self.z = [torch.zeros((n, *s), dtype=torch.bool) for s in shapes]
        self.syn = [torch.zeros((n, *s), dtype=torch.float16) for s in shapes] if synapses else []

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.v, *self.z, *self.syn))

    def start_state(self, idx: Tensor, like: Tensor) -> SpikingState:
        """The stored states of examples ``idx`` as a :class:`SpikingState` on ``like``'s device and dtype."""
        v = tuple(t[idx].to(like) for t in self.v)
        z = tuple(t[idx].to(like) for t in self.z)
        syn = tuple(t[idx].to(like) for t in self.syn)
        zeros = tuple(torch.zeros_like(t) for t in v)
        return SpikingState(v=v, spikes=z, syn=syn, trace=zeros, rate=zeros[-1])

    def store(self, idx: Tensor, state: SpikingState) -> None:
        """Keep the free phase's end ``state`` of examples ``idx``."""
        for dst, src in zip(self.v, state.v):
            dst[idx] = src.detach().to("cpu", torch.float16)
        for dst, src in zip(self.z, state.spikes):
            dst[idx] = src.detach().to("cpu") > 0
        for dst, src in zip(self.syn, state.syn):
            dst[idx] = src.detach().to("cpu", torch.float16)

    def state_dict(self) -> dict:
        return {"v": self.v, "z": self.z, "syn": self.syn}

    def load_state_dict(self, sd: dict | None, source: str) -> None:
        """Restore :meth:`state_dict`'s output; ``sd`` None (a cold run's checkpoint) is an error naming ``source``."""
        if sd is None:
            raise CheckpointError(f"{source}: has no warm-start states, but the config asks for "
                                  f"spiking.warm_start: persistent")
        for key in ("v", "z", "syn"):
            mine, theirs = getattr(self, key), sd.get(key)
            if theirs is None or len(theirs) != len(mine) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
                raise CheckpointError(f"{source}: the warm-start states '{key}' do not match this network and "
                                      f"dataset (expected {[tuple(a.shape) for a in mine]}, found "
                                      f"{None if theirs is None else [tuple(b.shape) for b in theirs]})")
        self.v, self.z, self.syn = list(sd["v"]), list(sd["z"]), list(sd["syn"])


def describe(p: Particles) -> str:
    n = p.v[0].shape[0]
    per = sum(math.prod(t.shape[1:]) for t in p.v)
    return f"warm start: persistent free-phase states for {n} examples × {per} neurons ({p.nbytes / 2**20:.0f} MiB)"
