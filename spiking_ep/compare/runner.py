"""Train the arms of a comparison: each arm and seed is an ordinary run folder ``OUT/<arm>-seed<k>``.

A second call resumes a half-finished comparison: finished arms are skipped, interrupted ones
continue from their checkpoint (``spiking-ep train --resume`` semantics), missing ones start.
An arm folder whose config differs from what the comparison asks for (other than the number of
epochs, which may grow) is an error: results of two different comparisons are never mixed.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import yaml

from rate_ref.config import ConfigError, to_dict

from ..checkpoint import atomic_write_text
from ..config import Config, config_from_dict, dump_config
from .arms import arm_config, run_name


def run_status(run_dir: Path, cfg: Config) -> str:
    """``new`` | ``partial`` (resume) | ``finished`` for the arm folder ``run_dir`` of config ``cfg``."""
    if not run_dir.exists():
        return "new"
    saved = run_dir / "config.yaml"
    if saved.is_file():
        # through the config classes, so keys added to the config since the run started take their defaults
        tree = to_dict(config_from_dict(yaml.safe_load(saved.read_text()), str(saved)))
        _check_same(tree, to_dict(cfg), run_dir)
    summary = run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("epochs", 0) >= cfg.train.epochs:
        return "finished"
    if (run_dir / "checkpoint.pt").is_file():
        return "partial"
    return "new"


def _check_same(saved: dict, wanted: dict, run_dir: Path) -> None:
    a, b = dict(saved), dict(wanted)
    a["train"] = {k: v for k, v in a["train"].items() if k != "epochs"}
    b["train"] = {k: v for k, v in b["train"].items() if k != "epochs"}
    diffs = [f"{sec}.{k}: {a.get(sec, {}).get(k)!r} there, {b[sec].get(k)!r} now"
             for sec in b for k in b[sec] if a.get(sec, {}).get(k) != b[sec].get(k)]
    if diffs:
        raise ConfigError(f"{run_dir} was trained with another config than this comparison asks for "
                          f"({'; '.join(diffs[:4])}{' …' if len(diffs) > 4 else ''}); "
                          f"use another --out folder, or --runs to compare existing runs")


def train_arms(cfg: Config, *, arms: tuple[str, ...], seeds: int, out: Path, log=print) -> dict[tuple[str, int], Path]:
    """Train (or resume, or skip) every arm × seed; returns {(arm, seed): run folder}."""
    from ..train import train
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    # check every arm's folder before any long computation
    plan = []
    for seed in range(seeds):
        for arm in arms:
            c = arm_config(cfg, arm, seed, out)
            run_dir = out / run_name(arm, seed)
            plan.append((arm, seed, c, run_dir, run_status(run_dir, c)))
    for arm, seed, c, run_dir, status in plan:
        runs[arm, seed] = run_dir
        status = run_status(run_dir, c)     # another process may have moved on since the plan
        if status == "finished":
            log(f"{run_dir.name}: finished, skipped")
            continue
        with _claim(out, run_dir.name) as mine:
            if not mine:
                log(f"{run_dir.name}: being trained by another process (lock {out / (run_dir.name + '.lock')}), skipped")
                continue
            status = run_status(run_dir, c)
            if status == "finished":
                log(f"{run_dir.name}: finished, skipped")
            elif status == "partial":
                log(f"{run_dir.name}: resuming from its checkpoint")
                atomic_write_text(dump_config(c), run_dir / "config.yaml")   # the epoch count may have grown
                train(c, resume=run_dir, log=log)
            else:
                if run_dir.exists():   # started but never checkpointed: nothing to keep
                    shutil.rmtree(run_dir)
                log(f"{run_dir.name}: training")
                train(c, run_dir=run_dir, log=log)
    return runs


@contextlib.contextmanager
def _claim(out: Path, name: str):
    """An exclusive lock on one arm (``OUT/<arm>-seed<k>.lock``, ``flock``), so that several
    ``--train-only`` processes sharing a comparison never train the same arm at once. A crashed
    process's lock goes with it (the kernel drops the flock)."""
    import fcntl
    f = open(out / f"{name}.lock", "w")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield True
    finally:
        f.close()
