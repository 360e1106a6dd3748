"""One mini-batch's gradient estimate for any method the config names, with divergence checks.

    rate EP       rate_ref.ep_gradients (any estimator; warm start and early stopping apply)
    rate BPTT     rate_ref.bptt_gradients (truncated; warm start and early stopping of the graph-free part)
    spiking EP    spiking_ep.learning.spiking_ep_gradients (rates or stdp rule; warm start applies)
    spiking BPTT  spiking_ep.spiking_bptt.spiking_bptt_gradients (surrogate gradients; warm start applies)

All return gradients in autograd's sign convention (estimates of ∂(mean loss)/∂θ), so the
training loop stores them as ``.grad`` for a torch optimizer whatever the method.
"""
from __future__ import annotations

import torch

import rate_ref as R

from .config import Config


class Divergence(RuntimeError):
    """NaN/Inf in states, gradients or weights; the message names the layer, step and phase."""


def first_nonfinite(named: dict) -> str | None:
    for k, v in named.items():
        if not torch.isfinite(v).all():
            return k
    return None


def _locate_in_phase(net, x, y, start, *, beta, steps, mode, masks) -> tuple[int, int] | None:
    # Only called after a phase ended non-finite: replay it step by step to name the first bad step.
    state = net.zero_state(x) if start is None else start
    with torch.no_grad():
        x_drive = net.layers[0].forward_drive(x)
        for t in range(1, steps + 1):
            state = R.step(net, x, state, beta=beta, y=y, mode=mode, masks=masks, x_drive=x_drive)
            for n, s in enumerate(state):
                if not torch.isfinite(s).all():
                    return n + 1, t
    return None


def check_states(net, x, y, cfg: Config, states: dict, masks, where: str, start=None) -> None:
    """Raise :class:`Divergence` naming the phase, layer and first step where a state went non-finite.
    ``start``: the free phase's start state (warm start), default zeros."""
    m = cfg.method
    for phase in ("free", "plus", "minus"):
        st = states.get(phase)
        if st is None or all(torch.isfinite(s).all() for s in st):
            continue
        beta = {"free": 0.0, "plus": states.get("beta", m.beta), "minus": -m.beta}[phase]
        layer = next(n + 1 for n, s in enumerate(st) if not torch.isfinite(s).all())
        step_txt = "in the phase"
        if cfg.model.kind == "rate":
            begin = start if phase == "free" else states["free"]
            hit = _locate_in_phase(net, x, y, begin, beta=beta, steps=m.T1 if phase == "free" else m.T2,
                                   mode=m.mode, masks=masks)
            if hit is not None:
                layer, t = hit
                step_txt = f"at step {t}"
        name = {"free": "free", "plus": f"nudged (beta={beta:+g})", "minus": f"nudged (beta={beta:+g})"}[phase]
        raise Divergence(f"non-finite state in layer {layer} {step_txt} of the {name} phase ({where})")


def compute_gradients(net, x, y, cfg: Config, gen: torch.Generator, masks, start=None) -> tuple[dict, tuple, dict]:
    """(grads keyed like named_parameters, state used for train predictions, extra statistics).

    ``start``: the free phase's start state (warm start; default zeros). ``extra`` holds
    ``state_free`` (what a warm start stores), ``steps`` (steps used per phase, rate models),
    ``states`` (rate models: for :func:`check_states`) and the spiking statistics.
    """
    m = cfg.method
    if cfg.model.kind == "spiking":
        sc = cfg.spiking
        if m.name == "bptt":
            from .spiking_bptt import spiking_bptt_gradients
            grads, stats = spiking_bptt_gradients(net, x, y, T1=m.T1, K=m.bptt_K, cfg=sc, mode=m.mode,
                                                  masks=masks, state=start)
            return grads, stats["rates"], stats
        from .learning import spiking_ep_gradients
        grads, stats = spiking_ep_gradients(net, x, y, rule=sc.rule, beta=m.beta, T1=m.T1, T2=m.T2,
                                            window=sc.window, cfg=sc, mode=m.mode, generator=gen,
                                            state=start, masks=masks)
        return grads, stats["rates_free"], stats
    if m.name == "bptt":
        grads, st = R.bptt_gradients(net, x, y, T1=m.T1, K=m.bptt_K, mode=m.mode, masks=masks, state=start,
                                     tol=m.tol, return_states=True)
        return grads, st["free"], {"states": {"free": st["free"]}, "state_free": st["free"], "steps": st["steps"]}
    grads, st = R.ep_gradients(net, x, y, estimator=m.estimator, beta=m.beta, T1=m.T1, T2=m.T2, mode=m.mode,
                               masks=masks, rule=m.vf_rule, generator=gen, state=start, tol=m.tol,
                               return_states=True)
    return grads, st["free"], {"states": st, "state_free": st["free"], "steps": st["steps"]}


def batch_stats(extra: dict, batch: int) -> dict:
    """Per-batch scalars worth logging: spikes per neuron per step per phase, synaptic ops per
    sample (spiking), steps used per phase (rate models with early stopping or warm starts)."""
    out = {}
    for phase, v in (extra.get("spikes_per_neuron_step") or {}).items():
        out[f"spikes_per_neuron_step_{phase}"] = float(v)
    if "synops" in extra:
        out["synops_per_sample"] = float(extra["synops"]) / batch
    for phase, v in (extra.get("steps") or {}).items():
        out[f"steps_{phase}"] = float(v)
    return out
