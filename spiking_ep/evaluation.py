"""``spiking-ep evaluate``: the test error of trained weights, from a run folder or a config + weights.

Which config: ``spiking-ep evaluate RUN_DIR`` uses the run's own ``config.yaml`` (network,
schedule, dataset, data subset, normalisation) and its ``weights.pt``. ``--config FILE`` replaces
that config and ``--set key=value`` changes single values, e.g. ``model.kind=spiking`` (rate-trained
weights run as a spiking network) or ``data.test_subset=null`` (the whole test set when the run
trained on a subset). ``spiking-ep evaluate CONFIG --weights RUN_OR_FILE``, the older form, works
as before. Results: one row per number of inference steps T1 (``--steps``), with test error (a
fraction), mean test loss and, for spiking networks, spikes per neuron per step and synaptic
operations per sample (see ``spiking_ep.learning``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from rate_ref.config import ConfigError

from .checkpoint import CheckpointError
from .config import Config, load_config


def resolve(target: str, *, config: str | None = None, weights: str | None = None,
            overrides: list[str] | tuple[str, ...] = ()) -> tuple[Config, str, str]:
    """``(config, weights, config source)`` for ``spiking-ep evaluate TARGET``.

    ``target`` is a run folder (config: ``--config`` if given, else its ``config.yaml``; weights:
    ``--weights`` if given, else the folder) or a YAML config file (then ``--weights`` is required).
    """
    path = Path(target)
    if path.is_dir():
        saved = path / "config.yaml"
        if config is None and not saved.is_file():
            raise CheckpointError(f"{path}: no config.yaml there (is it a run folder?); pass --config CONFIG "
                                  f"to evaluate its weights with another config")
        source = str(config) if config is not None else str(saved)
        return load_config(source, overrides), str(weights or path), source
    if path.is_file():
        if config is not None:
            raise ConfigError(f"{path} is a config file and --config {config} names another; give one config")
        if weights is None:
            raise ConfigError(f"--weights: evaluating the config file {path} needs the weights to load "
                              f"(--weights RUN_DIR or FILE.pt); or pass a run folder instead of the config")
        return load_config(path, overrides), str(weights), str(path)
    raise ConfigError(f"{path} does not exist (expected a run folder or a config file)")


def parse_steps(text: str | None, default: int) -> list[int]:
    """``"25,50,100"`` → ``[25, 50, 100]``; None → ``[default]``."""
    if not text:
        return [default]
    try:
        steps = [int(t) for t in text.split(",")]
    except ValueError:
        raise ConfigError(f"--steps {text!r}: expected comma-separated whole numbers, e.g. 25,50,100") from None
    if any(t < 1 for t in steps):
        raise ConfigError(f"--steps {text!r}: time steps must be ≥ 1")
    return steps


def evaluate_weights(cfg: Config, weights: str, steps: list[int], *, config_source: str | None = None) -> dict:
    """Load the weights into ``cfg``'s network and evaluate it on the test split once per T1 in ``steps``.

    Returns ``{"model_kind", "weights", "config", "n_test", "test_subset", "data", "device", "results",
    "provenance"}``
    with ``results`` one dict per T1: ``T1``, ``test_error``, ``test_loss`` (and the spiking counts).
    A progress bar per T1 goes to stderr when it is a terminal.
    """
    import torch

    import rate_ref as R

    from .checkpoint import load_weights
    from .inference import evaluate
    from .prepare import load_data, normalisation, resolve_device
    from .runinfo import choose_threads, provenance

    choose_threads(cfg.train.threads, log=lambda m: print(m, file=sys.stderr))
    device, dtype = resolve_device(cfg.train.device), getattr(torch, cfg.train.dtype)
    net = R.build_network(cfg.model).to(device=device, dtype=dtype)
    load_weights(net, weights)
    ds = load_data(cfg)
    mean, std = normalisation(cfg, ds)
    rows = []
    for t in steps:
        res = evaluate(net, ds.test_x, ds.test_y, cfg, device, dtype, mean, std, steps=t, desc=f"test, T1 = {t}")
        rows.append({"T1": t, "test_error": res["error"], "test_loss": res["loss"],
                     **{k: v for k, v in res.items() if k not in ("error", "loss")}})
    return {"model_kind": cfg.model.kind, "weights": str(weights), "config": config_source,
            "n_test": len(ds.test_x), "test_subset": cfg.data.test_subset, "data": ds.source,
            "device": str(device), "results": rows, "provenance": provenance(device)}


def format_table(result: dict) -> str:
    """The result of :func:`evaluate_weights` as a few lines of aligned text."""
    rows = result["results"]
    spiking = "synops_per_sample" in rows[0]
    lines = [f"{result['model_kind']} network, weights {result['weights']}"
             + (f", config {result['config']}" if result.get("config") else ""),
             f"data: {result['data']}"]
    if result.get("test_subset"):
        lines.append(f"test images: {result['n_test']} (data.test_subset = {result['test_subset']}; "
                     f"--set data.test_subset=null evaluates the whole test set)")
    else:
        lines.append(f"test images: {result['n_test']}")
    head = ["T1", "test error", "test loss"] + (["spikes/neuron/step", "synaptic ops/sample"] if spiking else [])
    body = [[str(r["T1"]), f"{100 * r['test_error']:.2f} %", f"{r['test_loss']:.4f}"]
            + ([f"{r['spikes_per_neuron_step']:.4f}", f"{r['synops_per_sample']:.4g}"] if spiking else [])
            for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines.append("")
    for cells in [head] + body:
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)
