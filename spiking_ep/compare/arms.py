"""The arms of a comparison: one base config → one ordinary training config per arm and seed.

    rate_ep        rate network, symmetric EP with the ``method`` section (β, T1, T2, mode, tol, warm start)
    bptt           rate network, truncated BPTT: same T1, K = method.K (default T2)
    spiking_rates  IF network, spiking EP, rate-product rule, compare.spiking_T1 / spiking_T2
    spiking_stdp   IF network, spiking EP, pair-based STDP rule, same steps
    spiking_bptt   IF network, surrogate-gradient BPTT through the last compare.spiking_bptt_K steps
                   (default: the last half of the free phase, the window inference reads)

Everything else (layers, θ, readout, loss, data, augmentation, optimiser, epochs, batch size,
update schedule ``method.mode``) is shared, so the arms differ only in how the gradient is
estimated and which neurons run. ``compare.overrides`` adds per-arm ``key=value`` settings;
a schedule or step difference between arms is then named in the report as a confound.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from rate_ref.config import ConfigError, to_dict

from ..config import ARMS, Config, _apply_override, config_from_dict

DESCRIPTIONS = {
    "rate_ep": "rate EP (symmetric)",
    "bptt": "rate BPTT",
    "spiking_rates": "spiking EP, rates rule",
    "spiking_stdp": "spiking EP, STDP rule",
    "spiking_bptt": "spiking BPTT (surrogate gradient)",
}
SPIKING = ("spiking_rates", "spiking_stdp", "spiking_bptt")


def arm_tree(cfg: Config, arm: str) -> dict:
    """The config of one arm as a plain dict (seed and folder not yet set)."""
    if arm not in ARMS:
        raise ConfigError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    tree = copy.deepcopy(to_dict(cfg))
    cmp, m = cfg.compare, tree["method"]
    if arm in SPIKING:
        tree["model"]["kind"] = "spiking"
        m["T1"] = cmp.spiking_T1 or m["T1"]
        m["T2"] = cmp.spiking_T2 or m["T2"]
        m["eval_T1"] = cmp.spiking_eval_T1 or m["eval_T1"]
        m["tol"] = None       # spiking phases run their full length
        m["K"] = None
    else:
        tree["model"]["kind"] = "rate"
    if arm in ("rate_ep", "spiking_rates", "spiking_stdp"):
        m["name"] = "ep"
        if arm != "rate_ep":
            tree["spiking"]["rule"] = "rates" if arm == "spiking_rates" else "stdp"
    else:
        m["name"] = "bptt"
        if arm == "spiking_bptt":
            m["K"] = cmp.spiking_bptt_K or max(1, (m["eval_T1"] or m["T1"]) // 2)
    for o in cmp.overrides:
        if o.arm == arm:
            for item in o.set:
                _apply_override(tree, item, f"compare.overrides ({arm})")
    return tree


def arm_config(cfg: Config, arm: str, seed: int, out: str | Path) -> Config:
    """The training config of ``arm`` with seed offset ``seed``, writing into ``out/<arm>-seed<seed>``."""
    tree = arm_tree(cfg, arm)
    tree["train"]["seed"] = cfg.train.seed + seed
    tree["train"]["out_dir"] = str(out)
    tree["train"]["run_name"] = run_name(arm, seed)
    tree["train"]["save_epoch_weights"] = True
    return config_from_dict(tree, f"compare arm {arm}")


def run_name(arm: str, seed: int) -> str:
    return f"{arm}-seed{seed}"


def arm_of(config: dict) -> str:
    """Which arm a run folder's config (a dict, as in its config.yaml) is."""
    kind, m = config["model"].get("kind", "rate"), config["method"]
    if kind == "rate":
        return "rate_ep" if m["name"] == "ep" else "bptt"
    if m["name"] == "bptt":
        return "spiking_bptt"
    return "spiking_rates" if config["spiking"]["rule"] == "rates" else "spiking_stdp"


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--runs {run_dir}: no config.yaml there (is it a run folder?)")
    return yaml.safe_load(path.read_text())


# Settings that must agree between arms for a fair comparison (a difference is a confound).
SHARED_KEYS = (("model", "layers"), ("model", "theta"), ("model", "loss"), ("model", "input_shape"),
               ("model", "init_scale"), ("data", "name"), ("data", "train_subset"), ("data", "test_subset"),
               ("data", "crop_padding"), ("data", "crop_pad_mode"), ("data", "hflip"), ("data", "std"),
               ("data", "std_scale"), ("train", "epochs"),
               ("train", "batch_size"), ("optim", "lrs"), ("optim", "momentum"), ("optim", "weight_decay"),
               ("method", "mode"))


def confounds(configs: dict[str, dict]) -> list[str]:
    """Human-readable differences between arms in settings that should be shared, e.g. the schedule."""
    out = []
    for sec, key in SHARED_KEYS:
        values = {name: c.get(sec, {}).get(key) for name, c in configs.items()}
        if len({yaml.safe_dump(v) for v in values.values()}) > 1:
            listing = ", ".join(f"{n}: {v}" for n, v in values.items())
            note = (" (synchronous and even/odd updates can settle to different fixed points of the same "
                    "weights: the schedule is part of the model)") if key == "mode" else ""
            out.append(f"{sec}.{key} differs between arms: {listing}{note}")
    return out
