"""Rate dynamics of the EP network.

    s_{t+1} = σ(∂Φ^β/∂s (x, s_t)),   σ(u) = clamp(u/θ, 0, 1)

with the drives computed explicitly by the layers (autograd of Φ is only the test oracle):

    ∂Φ^β/∂s_n = forward_drive_n(s_{n-1}) + feedback_drive_{n+1}(s_{n+1}, s_n) [+ nudge at n = N]

``mode="sync"`` updates all layers from s_t at once (the paper); ``mode="evenodd"`` updates
the layers with even index (0-based: s_1, s_3, …) from s_t, then the odd ones from the
half-updated state (Gauss–Seidel), which converges in far fewer steps; ``mode="forward"``
updates s_1, s_2, …, s_N in turn, each from the state as updated so far (layer n reads s_{n-1}
of this step and s_{n+1} of the previous one: the schedule of an exported NIR graph, see
docs/export.md). All three iterate the same map, so they share its fixed points.

Stability of nudged phases with the squared-error output: the nudge β(onehot(y) − s_N) feeds
s_N back onto itself with slope −β/θ, so for β ≥ θ the output flips with period 2 and no
schedule converges (the trainer refuses such configs; the paper uses β = 0.5 with θ = 1). In
``sync`` mode the layered coupling has eigenvalues in ± pairs, and the extra −β/θ can push one
below −1 even for β < θ: a sync nudged phase may then oscillate with period 2 where
``evenodd`` converges (tests/test_rate_ref.py shows both). The free phase (β = 0) is unaffected.

Dropout: ``masks[n]`` (``None`` or a tensor shaped like s_{n+1}, values 0 or 1/(1−p)) replaces
s by m⊙s inside Φ, so drives become m ⊙ ∂Φ/∂(m⊙s) and dropped units stay at σ(0) = 0.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .network import EPNetwork, State

Masks = Sequence[Tensor | None] | None
MODES = ("sync", "evenodd", "forward")


def sigma(u: Tensor, theta: float = 1.0) -> Tensor:
    """Hard sigmoid σ(u) = clamp(u/θ, 0, 1); a rate in spikes per step."""
    return torch.clamp(u / theta, 0.0, 1.0)


def _masked(state: State, masks: Masks) -> State:
    if masks is None:
        return state
    return tuple(s if m is None else s * m for s, m in zip(state, masks))


def drives(net: EPNetwork, x: Tensor, state: State, *, beta: float = 0.0, y: Tensor | None = None,
           which: Sequence[int] | None = None, masks: Masks = None, x_drive: Tensor | None = None) -> dict[int, Tensor]:
    """∂Φ^β/∂s_n for the layer indices ``which`` (0-based, default all): ``{n: tensor shaped like s_n}``.

    ``x_drive`` is the (constant) forward drive of the first layer, ``forward_drive_1(x)``; pass it
    to avoid recomputing it every step.
    """
    n_layers = len(net.layers)
    which = range(n_layers) if which is None else which
    s = _masked(state, masks)
    memo: dict[int, tuple] = {}

    def forward(k: int) -> tuple:
        # layer k's forward drive and its max-pooling indices, computed once per call: with max
        # pooling the feedback into layer k−1 unpools at the argmax of that same convolution
        if k not in memo:
            memo[k] = ((x_drive, None) if k == 0 and x_drive is not None
                       else net.layers[k].forward_and_indices(x if k == 0 else s[k - 1]))
        return memo[k]

    out = {}
    for n in which:
        d = forward(n)[0]
        if n + 1 < n_layers:
            up = net.layers[n + 1]
            idx = forward(n + 1)[1] if getattr(up, "feedback_needs_indices", False) else None
            d = d + up.feedback_given(s[n + 1], s[n], idx)
        elif beta != 0.0:
            d = d + net.nudge(s, y, beta)
        if masks is not None and masks[n] is not None:
            d = d * masks[n]
        out[n] = d
    return out


def autograd_drives(net: EPNetwork, x: Tensor, state: State, *, beta: float = 0.0, y: Tensor | None = None,
                    which: Sequence[int] | None = None, masks: Masks = None,
                    x_drive: Tensor | None = None) -> dict[int, Tensor]:
    """∂Φ^β/∂s_n by autograd of Φ^β(x, m ⊙ s) — the reference implementation's style (its code
    differentiates Φ at every step). Same values as :func:`drives`; kept as the baseline the
    benchmarks time the explicit drives against (``x_drive`` is accepted and unused)."""
    which = range(len(state)) if which is None else which
    with torch.enable_grad():
        s = tuple(t.detach().requires_grad_(True) for t in state)
        phi = net.phi(x, _masked(s, masks), beta, y).sum()
        grads = torch.autograd.grad(phi, s)
    return {n: grads[n] for n in which}


DRIVES = {"explicit": drives, "autograd": autograd_drives}


def step(net: EPNetwork, x: Tensor, state: State, *, beta: float = 0.0, y: Tensor | None = None,
         mode: str = "sync", masks: Masks = None, x_drive: Tensor | None = None, impl: str = "explicit") -> State:
    """One time step of the dynamics; returns the new state (the input state is not modified).

    ``impl``: ``explicit`` (the layers' drives) or ``autograd`` (autograd of Φ, the baseline)."""
    drives = DRIVES[impl]
    if mode == "sync":
        d = drives(net, x, state, beta=beta, y=y, masks=masks, x_drive=x_drive)
        # the state keeps its dtype when the drives come from reduced-precision (autocast) convolutions
        return tuple(sigma(d[n], net.theta).to(state[n].dtype) for n in range(len(state)))
    if mode in ("evenodd", "forward"):
        new = list(state)
        n_layers = len(state)
        groups = ([range(p, n_layers, 2) for p in (0, 1)] if mode == "evenodd"
                  else [range(n, n + 1) for n in range(n_layers)])
        for which in groups:
            d = drives(net, x, tuple(new), beta=beta, y=y, which=which, masks=masks, x_drive=x_drive)
            for n in which:
                new[n] = sigma(d[n], net.theta).to(state[n].dtype)
        return tuple(new)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def relax(net: EPNetwork, x: Tensor, *, steps: int, beta: float = 0.0, y: Tensor | None = None,
          state: State | None = None, mode: str = "sync", masks: Masks = None) -> State:
    """Run ``steps`` steps of the dynamics from ``state`` (default: zeros); return the final state.

    Differentiable (used with a graph by BPTT); wrap in ``torch.no_grad()`` for EP phases.
    """
    return settle(net, x, steps=steps, beta=beta, y=y, state=state, mode=mode, masks=masks)[0]


def settle(net: EPNetwork, x: Tensor, *, steps: int, tol: float | None = None, beta: float = 0.0,
           y: Tensor | None = None, state: State | None = None, mode: str = "sync",
           masks: Masks = None, impl: str = "explicit") -> tuple[State, int]:
    """Relax for at most ``steps`` steps, stopping early once max_n max|s_{t+1} − s_t| < ``tol``.

    Returns ``(state, steps_used)``. The residual is the largest state change over the whole batch
    and all layers (units of σ, i.e. spikes per step), so every example of the batch has settled
    to that accuracy; ``tol=None`` runs all ``steps`` (then this is :func:`relax`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if beta != 0.0 and y is None:
        raise ValueError("a nudged phase (beta ≠ 0) needs the labels y")
    if tol is not None and not tol > 0:
        raise ValueError(f"tol must be > 0 (or None), got {tol}")
    net.check_input(x)
    state = net.zero_state(x) if state is None else tuple(state)
    x_drive = net.layers[0].forward_drive(x)
    for t in range(steps):
        new = step(net, x, state, beta=beta, y=y, mode=mode, masks=masks, x_drive=x_drive, impl=impl)
        if tol is not None and max((a - b).abs().max().item() for a, b in zip(new, state)) < tol:
            return new, t + 1
        state = new
    return state, steps


def draw_masks(net: EPNetwork, batch: int, *, generator: torch.Generator | None = None,
               device=None, dtype=torch.float32) -> tuple[Tensor | None, ...] | None:
    """One dropout mask per layer for a mini-batch (kept fixed across all phases), values 0 or 1/(1−p)."""
    ps = [lc.dropout for lc in net.cfg.layers]
    if not any(ps):
        return None
    masks = []
    for p, shape in zip(ps, net.state_shapes):
        if p == 0.0:
            masks.append(None)
            continue
        keep = torch.rand((batch, *shape), generator=generator) >= p
        masks.append((keep.to(dtype) / (1.0 - p)).to(device))
    return tuple(masks)
