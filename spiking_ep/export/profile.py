"""The NIR-exact profile: simulator settings under which our spiking network runs exactly what an
exported NIR graph runs (docs/export.md).

    spiking.reset: zero          NIR's IF/LIF reset to v_reset (= 0); reset by subtraction has no node
    spiking.v_floor: null        NIR neurons have no membrane bounds
    spiking.v_ceiling: null
    spiking.tau_syn: null        the graph feeds spikes straight into the next drive (no synaptic filter)
    spiking.rate_estimate: count the graph's output is the readout of the spikes; the prediction is the
                                 argmax of its sum over the window, i.e. of the readout of spike counts
    method.mode: forward         the schedule nirtorch executes the graph with

Train, fine-tune or evaluate in it with ``--set`` and :func:`overrides`, e.g.
``spiking-ep evaluate CONFIG --weights RUN --set model.kind=spiking --set spiking.reset=zero …``.
"""
from __future__ import annotations

import dataclasses

from ..config import Config

NIR_PROFILE = {"spiking.reset": "zero", "spiking.v_floor": None, "spiking.v_ceiling": None, "spiking.tau_syn": None,
               "spiking.rate_estimate": "count", "method.mode": "forward"}


def overrides() -> list[str]:
    """The profile as ``--set`` items (plus ``model.kind=spiking``)."""
    fmt = lambda v: "null" if v is None else str(v)
    return ["model.kind=spiking"] + [f"{k}={fmt(v)}" for k, v in NIR_PROFILE.items()]


def nir_exact(cfg: Config) -> Config:
    """``cfg`` as a spiking model in the NIR-exact profile (everything else unchanged)."""
    sections = {}
    for key, value in NIR_PROFILE.items():
        section, field = key.split(".")
        sections.setdefault(section, {})[field] = value
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, kind="spiking"),
        **{s: dataclasses.replace(getattr(cfg, s), **fields) for s, fields in sections.items()})


def deviations(cfg: Config) -> list[str]:
    """The profile settings ``cfg`` does not have, as ``key: has → profile`` strings."""
    out = [] if cfg.model.kind == "spiking" else [f"model.kind: {cfg.model.kind} → spiking"]
    for key, value in NIR_PROFILE.items():
        section, field = key.split(".")
        have = getattr(getattr(cfg, section), field)
        if have != value:
            out.append(f"{key}: {have} → {value}")
    return out
