"""``spiking-ep compare``: how far spiking EP is from rate EP and from BPTT, on the same network and data.

One config names the network, data and budget (its ``compare`` section the arms and what to
measure); :func:`run_compare` trains every arm and seed as an ordinary run folder under ``out``
(resuming a half-finished comparison, skipping finished arms), or takes existing run folders,
then writes ``report.json``, ``report.md`` and the plots into ``out``.

Modules: ``arms`` (one config per arm), ``runner`` (train / resume / skip), ``measure``
(gradient agreement, fixed-point gap, conversion, cost), ``gap`` (report.json's content),
``render`` (markdown and plots).
"""
from __future__ import annotations

import json
from pathlib import Path

from rate_ref.config import ConfigError

from ..checkpoint import atomic_write_text
from ..config import Config
from .arms import arm_of, read_config, run_name

__all__ = ["run_compare"]


def _existing(runs: list[str]) -> dict[tuple[str, int], Path]:
    out: dict[tuple[str, int], Path] = {}
    for d in runs:
        arm = arm_of(read_config(d))
        seed = sum(1 for a, _ in out if a == arm)
        for name in ("metrics.csv", "summary.json"):
            if not (Path(d) / name).is_file():
                raise ConfigError(f"--runs {d}: no {name} there (is it a finished run folder?)")
        out[arm, seed] = Path(d)
    return out


def _on_disk(cfg: Config, arms: tuple[str, ...], seeds: int, out: Path):
    """The arm folders already under ``out``: (finished, in progress), each {(arm, seed): folder}.

    In progress: started, with at least one epoch in metrics.csv, not yet at the configured epochs
    (a comparison too long for one session). Folders trained with another config are an error.
    """
    from ..report import read_metrics
    from .arms import arm_config
    from .runner import run_status
    finished, partial = {}, {}
    for s in range(seeds):
        for a in arms:
            d = out / run_name(a, s)
            status = run_status(d, arm_config(cfg, a, s, out))
            if status == "finished":
                finished[a, s] = d
            elif (d / "metrics.csv").is_file() and read_metrics(d):
                partial[a, s] = d
    return finished, partial


def publish(out: Path, run_dirs: dict[tuple[str, int], Path], dest: str | Path) -> None:
    """Copy the report (markdown, JSON, plots, measurement JSON) and every arm's raw run files
    (config.yaml, metrics.csv, summary.json where finished; never weights) into the results folder
    ``dest``."""
    import shutil

    from ..report import collect_raw
    dest = Path(dest)
    (dest / "measurements").mkdir(parents=True, exist_ok=True)
    for p in [*out.glob("report.*"), *out.glob("*.png")]:
        shutil.copyfile(p, dest / p.name)
    for p in (out / "measurements").glob("*.json"):
        shutil.copyfile(p, dest / "measurements" / p.name)
    collect_raw(run_dirs.values(), dest / "runs")


def run_compare(cfg: Config, *, out: str | Path, arms: tuple[str, ...] | None = None, seeds: int = 1,
                runs: list[str] | None = None, train: bool = True, report: bool = True, measure: bool = True,
                title: str | None = None, results: str | Path | None = None, log=print) -> dict | None:
    """Train the arms (unless ``runs`` are given or ``train`` is False), then write the gap report
    into ``out`` (and, with ``results``, copy it with the arms' raw run files there).

    Without training (``train`` False, no ``runs``) the report covers the finished arms under
    ``out`` and lists the arms still in progress (their learning curves so far) apart from them.

    Returns report.json's content (None when ``report`` is False).
    """
    out = Path(out)
    arms = tuple(arms or cfg.compare.arms)
    if seeds < 1:
        raise ConfigError(f"--seeds: at least 1, got {seeds}")
    partial: dict[tuple[str, int], Path] = {}
    if runs:
        run_dirs = _existing(runs)
    elif train:
        from .runner import train_arms
        run_dirs = train_arms(cfg, arms=arms, seeds=seeds, out=out, log=log)
    else:
        run_dirs, partial = _on_disk(cfg, arms, seeds, out)
        if not run_dirs:
            raise ConfigError(f"{out}: no finished arm folders to report on")
    if not report:
        return None
    from . import gap, render
    out.mkdir(parents=True, exist_ok=True)
    rep = gap.build(cfg, run_dirs, out, measure=measure, log=log, in_progress=partial)
    atomic_write_text(json.dumps(rep, indent=1) + "\n", out / "report.json")
    pngs = render.plots(rep, out)
    atomic_write_text(render.markdown(rep, title or "Spiking EP vs rate EP vs BPTT", pngs), out / "report.md")
    log(f"report: {out / 'report.md'}")
    if results is not None:
        publish(out, {**run_dirs, **partial}, results)
        log(f"report and raw run files copied to {results}")
    return rep
