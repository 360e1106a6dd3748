"""Local spiking updates that approximate the symmetric EP estimate (DESIGN §2).

Phases: a free phase of T1 steps (β = 0) from zero (or a given state), then a +β and a −β
phase of T2 steps, each from a copy of the free phase's end state (membranes, spikes,
traces). Rates r are spike counts over the last ``window`` steps of a phase / ``window``.

Rules (returned in autograd's sign convention, estimates of ∂(mean loss)/∂θ, like
``rate_ref.ep_gradients``; B = batch size):

``rates``   ∂L/∂θ ≈ −(1/2βB) [∂Φ^β/∂θ(r^{+β}) − ∂Φ^{−β}/∂θ(r^{−β})]
            with the measured rates in place of the states. For a dense layer this is
            −(1/2βB)[r_n^{+} r_{n−1}^{+ᵀ} − r_n^{−} r_{n−1}^{−ᵀ}]; the readout gets
            ½[∂ℓ/∂W_out(r^{+β}) + ∂ℓ/∂W_out(r^{−β})].

``stdp``    pair-based STDP with a symmetric window. During the window of each nudged phase
            every synapse (pre j → post i) accumulates

                E_ij = Σ_t ½ [z_i(t) x_j(t) + x_i(t) z_j(t)]

            with z spikes and x unit-gain traces (x ← αx + (1−α)z, α = exp(−1/tau_trace), so a
            train of rate r has E[x] = r and E_ij ≈ window · r_i r_j for weakly correlated trains:
            the rate product ∂Φ/∂W computes). Then ∂L/∂W ≈ −(E^{+β} − E^{−β}) / (2β · window · B).
            Convolutions accumulate the correlation ∂Φ/∂W computes (conv2d weight gradient of the
            unpooled post signal against the pre signal), fed with spikes and traces; biases
            accumulate post spikes; the input layer's presynaptic signal is x itself (a constant
            current = its own rate). The readout (outside the spiking system) is as for ``rates``.
            Only pre, post and the phase sign enter (plus the readout error at the output).
            With ``rate_estimate="charge"`` each neuron's residual charge c = window·r̂ − count
            (the spike it owes, from its membrane) is paired once with the other side's final
            trace: E += ½[c_i x_j(end) + x_i(end) c_j], and biases use window·r̂.

Statistics: ``spikes_per_neuron_step`` per phase (free / plus / minus), ``synops`` = Σ over all
phases and all spikes of the number of synapses (weight entries) the spike is multiplied with
on its way to other neurons (forward into layer n+1, back into layer n−1, and for the last layer
the softmax readout's synapses, see ``spiking_ep.dynamics.fanouts``; the constant input current
is not counted), summed over the batch; ``rates_free`` (the measured free-phase rates).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from rate_ref.estimators import _phi_param_grads
from rate_ref.network import EPNetwork

from .config import SpikingConfig
from .dynamics import SpikingState, check_network, relax_spiking

RULES = ("rates", "stdp")


def default_windows(T1: int, T2: int, window: int | None) -> tuple[int, int]:
    """(free-phase window, nudged-phase window): ``window`` clipped to each phase, or by default
    the last half of the free phase and the whole nudged phase (its start state is shared by
    both nudged phases, so their quantisation errors are correlated and cancel in the difference)."""
    if window is None:
        return max(1, T1 // 2), T2
    return min(window, T1), min(window, T2)


def spiking_ep_gradients(net: EPNetwork, x: Tensor, y: Tensor, *, rule: str | None = None, beta: float,
                         T1: int, T2: int, window: int | None = None, cfg: SpikingConfig | None = None,
                         mode: str = "sync", generator: torch.Generator | None = None,
                         state: SpikingState | None = None, masks=None) -> tuple[dict[str, Tensor], dict]:
    """Spiking estimate of ∂(mean loss)/∂θ, ``dict[name, Tensor]`` keyed like ``net.named_parameters()``.

    ``rule``: ``rates`` or ``stdp`` (default ``cfg.rule``); ``window``: rate-measurement window
    (default ``cfg.window``, else :func:`default_windows`); ``state``: warm start of the free phase;
    ``masks``: dropout masks (``rate_ref.draw_masks``), fixed across the three phases.
    ``generator`` is accepted for API symmetry with ``rate_ref.ep_gradients`` (the neurons are
    deterministic). Returns ``(grads, stats)``; stats: ``spikes_per_neuron_step`` ({free, plus,
    minus}), ``synops`` (all phases), ``rates_free``, ``state_free``, ``windows``.
    """
    cfg = cfg or SpikingConfig()
    rule = rule or cfg.rule
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule != cfg.rule:   # the dynamics keep spike traces only for the STDP rule
        cfg = dataclasses.replace(cfg, rule=rule)
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (the +β and −β phases are both run), got {beta}")
    if net.cfg.unidirectional:
        raise ValueError("unidirectional (vector-field) networks are not supported by the spiking rules yet")
    check_network(net)
    w_free, w_nudge = default_windows(T1, T2, window if window is not None else cfg.window)
    n = x.shape[0]
    with torch.no_grad():
        r_free, s_free, st_free = relax_spiking(net, x, steps=T1, window=w_free, state=state, cfg=cfg, mode=mode,
                                                masks=masks)
        phases = {}
        for name, b in (("plus", beta), ("minus", -beta)):
            acc = _StdpAccumulator(net, x, masks) if rule == "stdp" else None
            rates, _, st = relax_spiking(net, x, steps=T2, window=w_nudge, beta=b, y=y, state=s_free, cfg=cfg,
                                         mode=mode, masks=masks, record=acc)
            phases[name] = (rates, st, acc)

    r_plus, r_minus = phases["plus"][0], phases["minus"][0]
    terms = [(1.0, r_plus, beta), (-1.0, r_minus, -beta)]
    scale = -1.0 / (2 * beta * n)
    grads = {k: g * scale for k, g in _phi_param_grads(net, x, terms, y, masks).items()}
    if rule == "stdp":
        e_plus, e_minus = (phases[k][2].eligibility(phases[k][0], w_nudge) for k in ("plus", "minus"))
        for k in e_plus:
            grads[k] = (e_plus[k] - e_minus[k]) * (scale / w_nudge)

    stats = {
        "spikes_per_neuron_step": {"free": st_free["spikes_per_neuron_step"],
                                   "plus": phases["plus"][1]["spikes_per_neuron_step"],
                                   "minus": phases["minus"][1]["spikes_per_neuron_step"]},
        "synops": st_free["synops"] + phases["plus"][1]["synops"] + phases["minus"][1]["synops"],
        "rates_free": r_free,
        "rates_plus": r_plus,
        "rates_minus": r_minus,
        "state_free": s_free,
        "windows": {"free": w_free, "nudged": w_nudge},
        "beta": beta,
        "rule": rule,
    }
    return grads, stats


class _StdpAccumulator:
    """Accumulates E = Σ_t ½[post spikes ⊗ pre traces + post traces ⊗ pre spikes] per layer.

    Called with each state of the window; steps are buffered and contracted in chunks (the
    contraction is bilinear, so a chunk stacked along the batch axis gives the sum over its steps
    in one matrix product / one conv weight-gradient call).
    """

    CHUNK = 16

    def __init__(self, net: EPNetwork, x: Tensor, masks=None):
        # with dropout Φ sees m ⊙ s, so spikes and traces enter the correlations scaled by m
        self.net, self.x = net, x
        self.masks = masks if masks is not None else [None] * len(net.layers)
        self.buf: list[SpikingState] = []
        self.E: dict[str, Tensor] = {}

    def __call__(self, state: SpikingState) -> None:
        if any(m is not None for m in self.masks):
            state = state._replace(
                spikes=tuple(z if m is None else z * m for z, m in zip(state.spikes, self.masks)),
                trace=tuple(t if m is None else t * m for t, m in zip(state.trace, self.masks)))
        self.buf.append(state)
        self.last = state
        cnt = getattr(self, "counts", None)
        self.counts = list(state.spikes) if cnt is None else [c + z for c, z in zip(cnt, state.spikes)]
        if len(self.buf) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self.buf:
            return
        for i, layer in enumerate(self.net.layers):
            if i == 0:
                # the input is a constant current: its "spikes" and its trace are x itself, so the
                # correlation of the chunk is that of x with the summed post spikes and traces
                z_sum = sum(s.spikes[0] for s in self.buf)
                e_w = 0.5 * _weight_corr(layer, self.x, z_sum + sum(s.trace[0] for s in self.buf))
                e_b = z_sum.sum(0) if z_sum.dim() == 2 else z_sum.sum((0, 2, 3))
            else:
                # one correlation for both pairings: [x_pre; z_pre] against [z_post; x_post]
                post = torch.cat([s.spikes[i] for s in self.buf] + [s.trace[i] for s in self.buf])
                pre = torch.cat([s.trace[i - 1] for s in self.buf] + [s.spikes[i - 1] for s in self.buf])
                e_w = 0.5 * _weight_corr(layer, pre, post)
                z_post = post[:len(post) // 2]
                e_b = z_post.sum(0) if z_post.dim() == 2 else z_post.sum((0, 2, 3))
            for name, e in ((f"layers.{i}.weight", e_w), (f"layers.{i}.bias", e_b)):
                self.E[name] = self.E[name] + e if name in self.E else e
        self.buf = []

    def eligibility(self, rates, window: int) -> dict[str, Tensor]:
        """E per parameter. ``rates`` (the phase's measured rates) set the bias eligibility
        (window · r̂_post) and, where they differ from the spike counts (``rate_estimate="charge"``),
        the residual c = window·r̂ − count is paired with the other side's final trace."""
        self._flush()
        E = dict(self.E)
        rates = [r if m is None else r * m for r, m in zip(rates, self.masks)]
        resid = [window * r - c for r, c in zip(rates, self.counts)]
        for i, layer in enumerate(self.net.layers):
            total = window * rates[i]
            E[f"layers.{i}.bias"] = total.sum(0) if total.dim() == 2 else total.sum((0, 2, 3))
            if not bool(resid[i].any()) and (i == 0 or not bool(resid[i - 1].any())):
                continue     # count estimate: nothing to add
            c_post = resid[i]
            if i == 0:
                x_pre, c_pre = self.x, torch.zeros_like(self.x)
            else:
                x_pre, c_pre = self.last.trace[i - 1], resid[i - 1]
            E[f"layers.{i}.weight"] = E[f"layers.{i}.weight"] + 0.5 * (
                _weight_corr(layer, x_pre, c_post) + _weight_corr(layer, c_pre, self.last.trace[i]))
        return E


def _weight_corr(layer, pre: Tensor, post: Tensor) -> Tensor:
    """∂/∂W of Σ post • P(W ⋆ pre) (no bias): the correlation ∂Φ_n/∂W computes, summed over the batch."""
    return layer.weight_corr(pre, post)
