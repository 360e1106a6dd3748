"""Inference: the free phase from zero on test data (rate fixed point or measured spiking rates).

Evaluation always starts cold (test examples have no previous state) and runs
``method.eval_T1`` steps (default T1), with the training schedule (``method.mode``).
"""
from __future__ import annotations

import torch
from tqdm import tqdm

import rate_ref as R

from . import data as D
from .config import Config


def as_input(x, cfg: Config):
    """The image batch in the memory format the network runs fastest in: channels-last (NHWC) for
    networks with conv layers (``train.channels_last``, default on for them), else unchanged.
    States inherit the format (``EPNetwork.zero_state``), so no layout conversion runs in the loop."""
    use = cfg.train.channels_last
    if use is None:
        use = any(lc.type == "conv" for lc in cfg.model.layers)
    return x.contiguous(memory_format=torch.channels_last) if use and x.dim() == 4 else x


def infer(net, x, cfg: Config, steps: int | None = None) -> tuple[tuple, dict]:
    """Free phase for inference: (rate fixed point or measured spiking rates, spiking statistics)."""
    m = cfg.method
    steps = steps or m.inference_T1
    with torch.no_grad():
        if cfg.model.kind == "spiking":
            from .dynamics import relax_spiking
            from .learning import default_windows
            window = default_windows(steps, m.T2, cfg.spiking.window)[0]
            rates, _, stats = relax_spiking(net, x, steps=steps, window=window, cfg=cfg.spiking, mode=m.mode)
            return rates, stats
        return R.relax(net, x, steps=steps, mode=m.mode), {}


def evaluate(net, ds_x, ds_y, cfg: Config, device, dtype, mean, std, *, desc="test", steps: int | None = None) -> dict:
    """Error (fraction) and mean loss of the free phase over a whole split; for spiking models also
    spikes per neuron per step and synaptic operations per sample (see ``spiking_ep.learning``)."""
    bs = cfg.train.eval_batch_size
    wrong, loss_sum, n, spikes, synops, neuron_steps = 0, 0.0, 0, 0.0, 0.0, 0.0
    for i in tqdm(range(0, len(ds_x), bs), desc=desc, leave=False, disable=None):
        x = as_input(D.normalize(ds_x[i:i + bs], mean, std, dtype=dtype).to(device), cfg)
        y = ds_y[i:i + bs].to(device)
        state, stats = infer(net, x, cfg, steps)
        wrong += (R.predict(net, state).argmax(1) != y).sum().item()
        loss_sum += R.loss(net, state, y).item() * len(y)
        n += len(y)
        if stats:
            spikes += stats["spikes"]
            synops += stats["synops"]
            neuron_steps += stats["neurons"] * stats["steps"] * len(y)
    out = {"error": wrong / n, "loss": loss_sum / n}
    if neuron_steps:
        out.update(spikes_per_neuron_step=spikes / neuron_steps, synops_per_sample=synops / n)
    return out


