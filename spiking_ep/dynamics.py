"""Spiking dynamics of the EP network on the shared ``rate_ref`` layers (DESIGN §2).

Every time step each layer n receives the current

    I_n(t) = forward_drive_n(z_{n-1}) + feedback_drive_{n+1}(z_{n+1}) [+ nudge at n = N]

computed by the *same* layer objects as the rate model, applied to the spikes z (0/1 per
neuron per step) emitted at the previous step (``mode="sync"``), or, with ``mode="evenodd"``,
layers 1, 3, … (0-based even) from the previous step's spikes and then layers 2, 4, … from
those fresh spikes, or, with ``mode="forward"``, layers 1, 2, …, N in turn, layer n reading layer
n−1's spikes of this step and layer n+1's of the previous step (the schedule nirtorch executes an
exported NIR graph with, docs/export.md). The input x is a constant current: forward_drive_1(x) (bias included) is
computed once. The membrane integrates the (optionally ``tau_syn``-filtered) current,
fires when it exceeds θ = ``v_threshold`` and subtracts θ (``cfg.reset="subtract"``) or resets
to 0 (``"zero"``, NIR's IF/LIF reset) (:mod:`spiking_ep.neurons`).

Units: the drive is in the units of the rate model's σ argument and θ defaults to
``net.theta``, so an IF neuron under constant drive u fires at clamp(u/θ, 0, 1) = σ(u) spikes
per step, and the spiking network's mean-field fixed point is the rate model's:
r = σ(∂Φ/∂s(x, r)).

Nudging (β ≠ 0), the output's current gains −β ∂ℓ/∂s_N evaluated at the output's running
rate estimate r̂_N (a unit-gain spike trace, time constant ``tau_nudge``):
β(onehot(y) − r̂_N) (squared error) or β W_outᵀ(onehot(y) − softmax(W_out r̂_N + b_out))
(softmax readout). A rate estimate rather than the raw spikes: the softmax is nonlinear, so
the mean of softmax(spikes) is not softmax(mean); with a smooth estimate the nudge's time
average is the rate model's nudge at the measured rates.

Bounded membrane (``cfg.v_floor``, ``cfg.v_ceiling``, in units of θ; default −1 and 2): an IF
neuron integrates the charge it cannot emit yet. Unbounded below, a neuron held silent early
stores negative charge it must later pay back (slow transients); floored at 0, fluctuations of a
silent neuron's current are rectified into spurious spikes (a bias near σ's lower corner).
Unbounded above, a neuron driven past θ in the free phase stores charge without limit and
keeps firing every step in a nudged phase that lowers its drive: the nudged rates, and the
update, are biased. A floor of −θ and a ceiling of 2θ (after reset) keep one spike or so of
charge either way; with them the rates converge to the rate fixed points as T grows.

Rates (``cfg.rate_estimate``), over the last ``window`` steps:
  count   (spike count) / window — spikes per step, quantised to 1/window;
  charge  (spike count + (v_end − v_start)/θ) / window, clamped to [0, 1] — the count plus
          the residual membrane charge. For an IF neuron this is exactly the mean input current
          over the window / θ (as long as the bounds were not hit), which removes the count's
          end-of-window quantisation.

Max pooling is refused: its unpooling routes feedback through the argmax of a spike pattern,
which jumps from step to step, and NIR has no max pooling; use average pooling.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from rate_ref.dynamics import Masks, drives
from rate_ref.network import EPNetwork

from .config import SpikingConfig
from .neurons import IFState, LIFState, SynapseState, if_step, lif_step, synapse_step, trace_step

MODES = ("sync", "evenodd", "forward")
Rates = tuple[Tensor, ...]


class SpikingState(NamedTuple):
    """State of the spiking network; every field is a tuple with one tensor per layer, shaped like s_n.

    v:      membrane potentials (after reset), units of θ
    spikes: spikes emitted at the last step, {0, 1}
    syn:    filtered input currents (``tau_syn``); empty tuple when there is no synaptic filter
    trace:  unit-gain spike traces x ← αx + (1−α)z, α = exp(−1/tau_trace) (STDP's traces)
    rate:   the output layer's running rate estimate, a unit-gain trace with α = exp(−1/tau_nudge),
            that the nudge reads; shaped like s_N
    """
    v: tuple[Tensor, ...]
    spikes: tuple[Tensor, ...]
    syn: tuple[Tensor, ...]
    trace: tuple[Tensor, ...]
    rate: Tensor


def check_network(net: EPNetwork) -> None:
    """Raise ValueError if the network cannot run as a spiking network (max pooling)."""
    for i, layer in enumerate(net.layers):
        if getattr(layer, "pool", None) == "max":
            raise ValueError(
                f"layer {i} uses max pooling, which spiking models do not support (its unpooling follows the "
                f"argmax of a spike pattern that changes every step, and NIR has no max pooling); "
                f"build the network with average pooling (pool: avg) instead")


def zero_state(net: EPNetwork, x: Tensor, cfg: SpikingConfig | None = None) -> SpikingState:
    """All-zero state (membranes, spikes, synaptic currents, traces) for the batch ``x``."""
    cfg = cfg or SpikingConfig()
    z = net.zero_state(x)
    return SpikingState(v=z, spikes=z, syn=z if cfg.tau_syn is not None else (), trace=z, rate=z[-1])


def _params(net: EPNetwork, cfg: SpikingConfig) -> dict:
    theta = float(cfg.v_threshold) if cfg.v_threshold is not None else float(net.theta)
    return dict(
        # the bounds are configured in units of θ, so they scale with it
        neuron=dict(v_threshold=theta, v_floor=None if cfg.v_floor is None else cfg.v_floor * theta,
                    v_ceiling=None if cfg.v_ceiling is None else cfg.v_ceiling * theta, reset=cfg.reset),
        tau_mem=cfg.tau_mem if cfg.neuron == "lif" else None,
        tau_syn=cfg.tau_syn,
        tau_trace=cfg.tau_trace,
        tau_nudge=cfg.tau_nudge,
        theta=theta,
        # spike traces feed only the STDP rule: skip them (elementwise work on every neuron, every
        # step) for the rates rule, inference and BPTT
        traces=cfg.rule == "stdp",
    )


def step(net: EPNetwork, x: Tensor, state: SpikingState, *, beta: float = 0.0, y: Tensor | None = None,
         cfg: SpikingConfig | None = None, mode: str = "sync", x_drive: Tensor | None = None,
         masks: Masks = None, spike_fn=None, _p: dict | None = None) -> SpikingState:
    """One time step of the spiking network; returns the new state (``state`` is not modified).

    ``x_drive``: forward_drive_1(x), the constant input current (computed here if not given).
    ``masks``: dropout masks as in ``rate_ref.dynamics`` (one per layer, 0 or 1/(1−p)): a kept
    neuron's spikes count m times in its targets' currents, a dropped neuron gets no current.
    ``spike_fn``: a surrogate-gradient Heaviside of v − θ (spiking BPTT); default the plain step.
    Spike traces are updated only for the STDP rule (``cfg.rule``); otherwise they stay as given.
    """
    cfg = cfg or SpikingConfig()
    p = _p or _params(net, cfg)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if x_drive is None:
        x_drive = net.layers[0].forward_drive(x)
    n_layers = len(state.v)
    v, z, syn, tr = list(state.v), list(state.spikes), list(state.syn), list(state.trace)
    if mode == "sync":
        groups = [range(n_layers)]
    elif mode == "evenodd":
        groups = [range(0, n_layers, 2), range(1, n_layers, 2)]
    else:  # forward: one layer at a time, bottom to top
        groups = [range(n, n + 1) for n in range(n_layers)]
    for which in groups:
        # currents from the spikes as they are now: last step's (sync), or this step's for the
        # layers already updated in this step (the odd group of even/odd, the layers below in forward)
        d = drives(net, x, tuple(z), which=which, x_drive=x_drive, masks=masks)
        if beta != 0.0 and (n_layers - 1) in d:
            m = None if masks is None else masks[-1]
            d[n_layers - 1] = d[n_layers - 1] + (net.nudge((state.rate,), y, beta) if m is None
                                                 else net.nudge((state.rate * m,), y, beta) * m)
        for n in which:
            current = d[n]
            if syn:
                syn_n, current = synapse_step(SynapseState(syn[n]), current, tau_syn=p["tau_syn"])
                syn[n] = syn_n.i
            if p["tau_mem"] is None:
                mem, z[n] = if_step(IFState(v[n]), current, spike_fn=spike_fn, **p["neuron"])
            else:
                mem, z[n] = lif_step(LIFState(v[n]), current, tau_mem=p["tau_mem"], spike_fn=spike_fn, **p["neuron"])
            v[n] = mem.v
            if p["traces"]:
                tr[n] = trace_step(tr[n], z[n], tau=p["tau_trace"])
    rate = trace_step(state.rate, z[-1], tau=p["tau_nudge"])
    return SpikingState(tuple(v), tuple(z), tuple(syn), tuple(tr), rate)


def fanouts(net: EPNetwork, like: Tensor) -> tuple[Tensor, ...]:
    """Synapses reached by one spike of each neuron, per layer, shaped like s_n (no batch dim).

    Counts the weight entries a spike of neuron j of layer n is multiplied with: forward through
    layer n+1 (if any) and backward through layer n's transpose (for n ≥ 2; layer 1 does not feed
    back into the input). Dense: out_features and in_features; conv: C_out × the valid kernel
    positions (forward), C_in × valid positions of the 4 unpooled conv outputs (feedback). The last
    layer's spikes also reach the n_classes readout synapses when the readout is softmax (its rate
    trace drives the readout and so the nudge).
    """
    out = []
    layers = net.layers
    for n, layer in enumerate(layers):
        f = like.new_zeros(layer.out_shape)
        if n + 1 < len(layers):
            f = f + _fwd_fanout(layers[n + 1], like)
        if n >= 1:
            f = f + _fb_fanout(layer, like)
        if n + 1 == len(layers) and net.readout is not None:
            f = f + net.readout.out_features
        out.append(f)
    return tuple(out)


def _fwd_fanout(layer, like: Tensor) -> Tensor:
    if hasattr(layer, "kernel"):
        c_out = layer.out_shape[0]
        ones_w = like.new_ones((c_out, layer.in_shape[0], layer.kernel, layer.kernel))
        return torch.nn.functional.conv_transpose2d(
            like.new_ones((1, c_out, *layer.conv_hw)), ones_w, padding=layer.padding)[0]
    return like.new_full(layer.in_shape, float(layer.out_shape[0]))


def _fb_fanout(layer, like: Tensor) -> Tensor:
    if hasattr(layer, "kernel"):
        c_in = layer.in_shape[0]
        ones_w = like.new_ones((1, c_in, layer.kernel, layer.kernel))
        per_pos = torch.nn.functional.conv2d(like.new_ones((1, *layer.in_shape)), ones_w, padding=layer.padding)[0]
        if layer.pool != "none":
            per_pos = torch.nn.functional.avg_pool2d(per_pos[None], 2)[0] * 4
        return per_pos.expand(layer.out_shape).clone()
    return like.new_full(layer.out_shape, float(math.prod(layer.in_shape)))


def relax_spiking(net: EPNetwork, x: Tensor, *, steps: int, window: int | None = None, beta: float = 0.0,
                  y: Tensor | None = None, state: SpikingState | None = None, cfg: SpikingConfig | None = None,
                  mode: str = "sync", masks: Masks = None, record=None) -> tuple[Rates, SpikingState, dict]:
    """Run ``steps`` steps of the spiking dynamics from ``state`` (default: zeros).

    Returns ``(rates, state, stats)``:
      rates:  tuple, one tensor per layer shaped like s_n: spike counts over the last ``window``
              steps / ``window`` (spikes per step; default window = steps), or with
              ``cfg.rate_estimate="charge"`` the count corrected by the residual membrane charge
      state:  the final :class:`SpikingState` (pass it to a later phase to continue from it)
      stats:  ``spikes`` (total spike count, all layers, all steps), ``neurons`` (per sample),
              ``spikes_per_neuron_step``, ``synops`` (Σ over spikes of the synapses each reaches,
              see :func:`fanouts`), ``steps``, summed over the batch.
    ``masks``: dropout masks (see :func:`step`), fixed across the phases of a mini-batch.
    ``record``, if given, is called as ``record(state)`` with each new state inside the window
    (the STDP rule accumulates its eligibility this way). No graph is built.
    """
    cfg = cfg or SpikingConfig()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if beta != 0.0 and y is None:
        raise ValueError("a nudged phase (beta ≠ 0) needs the labels y")
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    window = steps if window is None else int(window)
    if not 1 <= window <= steps:
        raise ValueError(f"window must be between 1 and steps ({steps}), got {window}")
    check_network(net)
    net.check_input(x)
    p = _params(net, cfg)
    with torch.no_grad():
        state = zero_state(net, x, cfg) if state is None else state
        x_drive = net.layers[0].forward_drive(x)
        counts = [torch.zeros_like(v) for v in state.v]
        totals = [torch.zeros_like(v) for v in state.v]
        v_start = state.v
        for t in range(steps):
            if t == steps - window:
                v_start = state.v
            state = step(net, x, state, beta=beta, y=y, cfg=cfg, mode=mode, x_drive=x_drive, masks=masks, _p=p)
            for n, z in enumerate(state.spikes):
                totals[n] += z
                if t >= steps - window:
                    counts[n] += z
            if record is not None and t >= steps - window:
                record(state)
        if cfg.rate_estimate == "charge":
            th = p["theta"]
            rates = tuple(torch.clamp((c + (ve - vs) / th) / window, 0.0, 1.0)
                          for c, ve, vs in zip(counts, state.v, v_start))
        else:
            rates = tuple(c / window for c in counts)
        fo = fanouts(net, x)
        n_spikes = sum(t.sum().item() for t in totals)
        synops = sum((t * f).sum().item() for t, f in zip(totals, fo))
    neurons = sum(math.prod(s) for s in net.state_shapes)
    stats = {"spikes": n_spikes, "neurons": neurons, "batch": x.shape[0], "steps": steps,
             "spikes_per_neuron_step": n_spikes / (neurons * x.shape[0] * steps), "synops": synops}
    return rates, state, stats
