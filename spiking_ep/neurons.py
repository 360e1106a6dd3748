"""Spiking neurons as functional steps on immutable states (time in steps, dt = 1).

Integrate-and-fire (IF), one step with input current I_t (same units as the threshold θ):

    v ← v + I_t                                   integrate
    z  = H(v − θ)        (H(a) = 1 if a > 0)      at most one spike per step
    v ← v − θ z          (reset="subtract")   or   v ← (1 − z) v   (reset="zero")
    v ← clamp(v, v_floor, v_ceiling)              optional bounds (None = unbounded)

With reset by subtraction and a constant input u the spike count after T steps from v = 0 is
within one of T·clamp(u/θ, 0, 1): the neuron's rate is the hard sigmoid σ(u) of the rate model,
up to 1/T. The IF neuron is a first-order sigma-delta modulator: Σ_t (I_t − θ z_t) stays
bounded (it is the membrane), so spike counts track the integral of the input.

Leaky integrate-and-fire (LIF), the exact solution of τ_mem dv/dt = −v over one step plus
the step's input charge:

    v ← v · exp(−1/τ_mem) + I_t,   then spike, reset and bounds as for IF.

(snnTorch's ``Leaky`` with ``beta = exp(−1/τ_mem)`` is the same map; norse's Euler step
v ← v + (dt/τ)(i − v) is it with exp(−1/τ_mem) = 1 − dt/τ and I_t = (dt/τ)·i.)

First-order synaptic current filter with unit DC gain (so rates, and hence the fixed point,
are unchanged by it; it only smooths):

    i ← α i + (1 − α) I_t,   α = exp(−1/τ_syn)

The spike comparison is strict (H(0) = 0), as in snnTorch, norse and NIR.
States are NamedTuples; every step returns a new state and never modifies its inputs.
Device and dtype follow the inputs.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

RESETS = ("subtract", "zero")


class IFState(NamedTuple):
    """Membrane potential ``v`` (after reset), any shape; units of the threshold."""
    v: Tensor


class LIFState(NamedTuple):
    """Membrane potential ``v`` (after reset), any shape; units of the threshold."""
    v: Tensor


class SynapseState(NamedTuple):
    """Filtered synaptic current ``i``, shaped like the neuron it feeds."""
    i: Tensor


def decay(tau: float | None) -> float:
    """Per-step decay factor exp(−1/τ) of a first-order filter with time constant τ (steps); 1 for τ = None (no decay)."""
    if tau is None:
        return 1.0
    if not tau > 0:
        raise ValueError(f"a time constant must be > 0 steps, got {tau}")
    return math.exp(-1.0 / tau)


def _fire(v: Tensor, v_threshold: float, v_floor: float | None, v_ceiling: float | None,
          reset: str, spike_fn=None) -> tuple[Tensor, Tensor]:
    # Shared by IF and LIF once the charge is integrated: threshold, reset, bounds.
    if spike_fn is None:
        z = (v > v_threshold).to(v.dtype)
        zr = z
    else:
        # a surrogate-gradient Heaviside (spiking BPTT): same spikes forward, a smooth derivative
        # backward; the reset does not carry gradient (the usual choice, as in snnTorch)
        z = spike_fn(v - v_threshold).to(v.dtype)
        zr = z.detach()
    if reset == "subtract":
        v = v - v_threshold * zr
    elif reset == "zero":
        v = v * (1.0 - zr)
    else:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    if v_floor is not None or v_ceiling is not None:
        v = torch.clamp(v, min=v_floor, max=v_ceiling)
    return v, z


def if_step(state: IFState, current: Tensor, *, v_threshold: float = 1.0, v_floor: float | None = None,
            v_ceiling: float | None = None, reset: str = "subtract", spike_fn=None) -> tuple[IFState, Tensor]:
    """One IF step: v ← v + I; z = H(v − θ); v ← v − θz; v ← clamp(v, v_floor, v_ceiling).

    ``current``: I_t, shaped like ``state.v``. Returns ``(new_state, spikes)`` with spikes in {0, 1}
    (same dtype as v). Units: charge per step in units of the threshold's. ``spike_fn``, if given,
    replaces H: it receives v − θ and returns spikes (a surrogate-gradient function for BPTT).
    """
    return _wrap(IFState, _fire(state.v + current, v_threshold, v_floor, v_ceiling, reset, spike_fn))


def lif_step(state: LIFState, current: Tensor, *, tau_mem: float, v_threshold: float = 1.0,
             v_floor: float | None = None, v_ceiling: float | None = None,
             reset: str = "subtract", spike_fn=None) -> tuple[LIFState, Tensor]:
    """One LIF step: v ← v·exp(−1/τ_mem) + I; then spike, reset and bounds as :func:`if_step`.

    ``tau_mem`` in steps (``None`` gives the IF neuron). Returns ``(new_state, spikes)``.
    """
    return _wrap(LIFState, _fire(state.v * decay(tau_mem) + current, v_threshold, v_floor, v_ceiling, reset,
                                 spike_fn))


def _wrap(cls, vz):
    v, z = vz
    return cls(v), z


def synapse_step(state: SynapseState, current: Tensor, *, tau_syn: float | None) -> tuple[SynapseState, Tensor]:
    """First-order current filter with unit DC gain: i ← α i + (1 − α) I, α = exp(−1/τ_syn).

    Returns ``(new_state, i)``; the filtered current is what the membrane integrates this step.
    ``tau_syn=None`` passes the current through unchanged.
    """
    if tau_syn is None:
        return SynapseState(current), current
    a = decay(tau_syn)
    i = a * state.i + (1.0 - a) * current
    return SynapseState(i), i


def trace_step(trace: Tensor, spikes: Tensor, *, tau: float) -> Tensor:
    """Unit-gain spike trace x ← α x + (1 − α) z, α = exp(−1/τ): a running rate estimate (spikes per step).

    For a stationary train of rate r, E[x] = r; the current spike is included (x jumps at the spike).
    """
    a = decay(tau)
    return a * trace + (1.0 - a) * spikes


def init_state(cls, like: Tensor):
    """Zero state of ``cls`` (IFState, LIFState, SynapseState) shaped, placed and typed like ``like``."""
    return cls(torch.zeros_like(like))
