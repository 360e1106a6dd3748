"""Spiking BPTT: surrogate-gradient backpropagation through the spiking network's time steps.

The standard way the neuromorphic field trains SNNs, here on the *same* spiking network that
spiking EP trains (same layers, neurons, schedule, readout and loss), so the two compare
directly. The free phase runs T1 − K steps without a graph (from zero or a warm-start state),
then K steps with a graph in which every spike is

    z = H(v − θ)  forward,   ∂z/∂v = surrogate'((v − θ)/θ) / θ  backward

with snnTorch's surrogate functions (``spiking.surrogate``: fast_sigmoid or atan;
slope ``spiking.surrogate_slope`` per unit of (v − θ)/θ, so it does not depend on θ). The reset
carries no gradient (snnTorch's default). The readout reads the rates measured over the K
steps with a graph (``spiking.rate_estimate``: spike count / K, or count plus residual charge),
exactly as inference does, and the loss is the model's loss at those rates:

    ∂L/∂θ = ∂/∂θ mean_batch ℓ(r, y),   r = rates over steps T1 − K + 1 … T1.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rate_ref.dynamics import Masks
from rate_ref.network import EPNetwork

from .config import SpikingConfig
from .dynamics import SpikingState, _params, check_network, relax_spiking, step, zero_state

SURROGATES = ("fast_sigmoid", "atan")


def surrogate_spike_fn(cfg: SpikingConfig, theta: float):
    """H(v − θ) with snnTorch's surrogate derivative, as a function of a = v − θ (see the module docstring)."""
    from snntorch import surrogate as S
    make = {"fast_sigmoid": lambda k: S.fast_sigmoid(slope=k), "atan": lambda k: S.atan(alpha=k)}
    if cfg.surrogate not in make:
        raise ValueError(f"spiking.surrogate must be one of {SURROGATES}, got {cfg.surrogate!r}")
    fn = make[cfg.surrogate](cfg.surrogate_slope)

    def spike(a: Tensor) -> Tensor:
        # snnTorch returns float32 spikes whatever the input dtype (so its backward runs in float32:
        # float64 gradients agree with a float64 unrolling to ~1e-5 relative, tests/test_spiking_bptt.py)
        return fn(a / theta).to(a.dtype)
    return spike


def spiking_bptt_gradients(net: EPNetwork, x: Tensor, y: Tensor, *, T1: int, K: int,
                           cfg: SpikingConfig | None = None, mode: str = "sync", masks: Masks = None,
                           state: SpikingState | None = None) -> tuple[dict[str, Tensor], dict]:
    """Surrogate-gradient estimate of ∂(mean loss)/∂θ, keyed like ``net.named_parameters()``.

    ``state``: start of the graph-free steps (warm start; default zeros). Returns ``(grads,
    stats)``; stats: ``rates`` (the rates the loss read, detached), ``state_free`` (the end state),
    ``loss``, ``spikes_per_neuron_step`` and ``synops`` of the whole free phase.
    """
    cfg = cfg or SpikingConfig()
    if not 0 < K <= T1:
        raise ValueError(f"spiking BPTT needs 0 < K ≤ T1, got K = {K}, T1 = {T1}")
    check_network(net)
    net.check_input(x)
    p = _params(net, cfg)
    spike_fn = surrogate_spike_fn(cfg, p["theta"])
    start = zero_state(net, x, cfg) if state is None else state
    st_pre = {"spikes": 0.0, "synops": 0.0}
    if T1 > K:
        _, start, st_pre = relax_spiking(net, x, steps=T1 - K, state=start, cfg=cfg, mode=mode, masks=masks)
    params = dict(net.named_parameters())
    with torch.enable_grad():
        x_drive = net.layers[0].forward_drive(x)
        s = start
        counts = [torch.zeros_like(v) for v in s.v]
        for _ in range(K):
            s = step(net, x, s, cfg=cfg, mode=mode, x_drive=x_drive, masks=masks, spike_fn=spike_fn, _p=p)
            counts = [c + z for c, z in zip(counts, s.spikes)]
        if cfg.rate_estimate == "charge":
            rates = tuple(torch.clamp((c + (ve - vs) / p["theta"]) / K, 0.0, 1.0)
                          for c, ve, vs in zip(counts, s.v, start.v))
        else:
            rates = tuple(c / K for c in counts)
        read = rates if masks is None else tuple(r if m is None else r * m for r, m in zip(rates, masks))
        loss = net.loss_per_sample(read, y).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    out = {k: (g if g is not None else torch.zeros_like(prm)) for (k, prm), g in zip(params.items(), grads)}
    with torch.no_grad():
        from .dynamics import fanouts
        fo = fanouts(net, x)
        # spikes of the graph steps were summed into counts; the graph-free steps come from relax_spiking
        n_spk = st_pre["spikes"] + sum(c.sum().item() for c in counts)
        synops = st_pre["synops"] + sum((c * f).sum().item() for c, f in zip(counts, fo))
    neurons = sum(c[0].numel() for c in counts)
    detached = SpikingState(*(tuple(t.detach() for t in f) if isinstance(f, tuple) else f.detach() for f in s))
    stats = {"rates": tuple(r.detach() for r in rates), "state_free": detached, "loss": loss.detach(),
             "spikes_per_neuron_step": {"free": n_spk / (neurons * x.shape[0] * T1)}, "synops": synops}
    return out, stats
