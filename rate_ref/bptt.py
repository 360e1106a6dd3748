"""Truncated BPTT through the same convergent network (the baseline EP is compared with).

T1 − K steps without a graph, then K steps with a graph, loss at the last step:

    ∂L/∂θ = ∂/∂θ mean_batch ℓ(s_{T1}, y),   s_{t+1} = σ(∂Φ/∂s(x, s_t))   for t ≥ T1 − K

With a converged free phase and K = T2 the result is what EP approximates (the GDU property).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .dynamics import Masks, _masked, relax, settle
from .network import EPNetwork, State


def bptt_gradients(net: EPNetwork, x: Tensor, y: Tensor, *, T1: int, K: int, mode: str = "sync",
                   masks: Masks = None, state: State | None = None, tol: float | None = None,
                   return_states: bool = False):
    """Truncated-BPTT gradient of the mean loss, ``dict[name, Tensor]`` keyed like ``named_parameters()``.

    ``state``: start of the T1 − K graph-free steps (warm start; default zeros); ``tol`` stops
    those steps early once max|Δs| < tol. The K steps with a graph always run in full. With
    ``return_states`` also returns ``{"free": s_{T1}, "start": s_{T1−K}, "loss", "steps"}``.
    """
    if not 0 < K <= T1:
        raise ValueError(f"BPTT needs 0 < K ≤ T1, got K = {K}, T1 = {T1}")
    with torch.no_grad():
        s0, used = settle(net, x, steps=T1 - K, tol=tol, state=state, mode=mode, masks=masks)
    params = dict(net.named_parameters())
    with torch.enable_grad():
        s = relax(net, x, steps=K, state=s0, mode=mode, masks=masks)
        loss = net.loss_per_sample(_masked(s, masks), y).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    out = {k: (g if g is not None else torch.zeros_like(p)) for (k, p), g in zip(params.items(), grads)}
    if return_states:
        return out, {"free": tuple(t.detach() for t in s), "start": s0, "loss": loss.detach(),
                     "steps": {"free": used, "graph": K}}
    return out

