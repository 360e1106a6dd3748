"""Result tables and plots from run folders (``spiking-ep report RUN... --out X.md --plot X.png``).

The table is built only from what the runs wrote (metrics.csv, summary.json, config.yaml),
and records each run's command, hardware, versions and date next to its numbers.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml


def read_run(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    for name in ("metrics.csv", "summary.json", "config.yaml"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} is missing (is {run_dir} a finished run folder?)")
    return {"dir": run_dir, "name": run_dir.name, "rows": read_metrics(run_dir),
            "summary": json.loads((run_dir / "summary.json").read_text()),
            "config": yaml.safe_load((run_dir / "config.yaml").read_text())}


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.csv of a run folder (finished or still training): one dict per epoch, numbers as floats."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v: str):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def describe_method(cfg: dict) -> str:
    m, model = cfg["method"], cfg["model"]
    kind = "spiking " if model.get("kind") == "spiking" else ""
    if m["name"] == "bptt":
        text = f"{kind}BPTT (T1={m['T1']}, K={m.get('K') or m['T2']})"
    else:
        text = f"{kind}EP {m['estimator'].replace('_', '-')} (β={m['beta']:g}, T1={m['T1']}, T2={m['T2']})"
        if model.get("kind") == "spiking":
            sp = cfg["spiking"]
            text += f", rule {sp['rule']}, {m.get('mode', 'sync')}, {sp.get('rate_estimate', 'count')} rates"
        warm = m.get("warm_start") or cfg.get("spiking", {}).get("warm_start") or "none"   # older runs: spiking.*
        if warm != "none":
            text += f", warm start {warm}"
        if m.get("eval_T1"):
            text += f", eval T1={m['eval_T1']}"
    if model.get("unidirectional"):
        text += f", unidirectional {m.get('vf_rule', 'new')} rule" if m["name"] == "ep" else ", unidirectional"
    return text


def markdown(runs: list[dict], title: str) -> str:
    lines = [f"# {title}", "",
             "| run | method | loss | epochs | final test error | best test error | final train error | time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s, last = r["summary"], r["rows"][-1]
        lines.append(f"| {r['name']} | {describe_method(r['config'])} | {r['config']['model']['loss']} | "
                     f"{len(r['rows'])} | {100 * last['test_error']:.2f} % | "
                     f"{100 * min(x['test_error'] for x in r['rows']):.2f} % | {100 * last['train_error']:.2f} % | "
                     f"{s.get('seconds_total', float('nan')) / 60:.1f} min |")
    extra = sorted({k for r in runs for k in r["rows"][-1] if k.startswith(("angle_", "spikes_", "synops"))})
    if extra:
        lines += ["", "Last-epoch extras:", "", "| run | " + " | ".join(extra) + " |",
                  "|---" * (len(extra) + 1) + "|"]
        for r in runs:
            lines.append(f"| {r['name']} | " + " | ".join(_fmt(r["rows"][-1].get(k)) for k in extra) + " |")
    init = sorted({k for r in runs for k in r["summary"].get("angles_at_init", {})})
    if init:
        lines += ["", "W–B angles at initialisation (degrees):", "", "| run | " + " | ".join(init) + " |",
                  "|---" * (len(init) + 1) + "|"]
        lines += [f"| {r['name']} | " + " | ".join(_fmt(r["summary"].get("angles_at_init", {}).get(k)) for k in init)
                  + " |" for r in runs]
    lines += ["", "## Per epoch", ""]
    for r in runs:
        lines += [f"**{r['name']}** (test error % by epoch): " +
                  ", ".join(f"{100 * x['test_error']:.2f}" for x in r["rows"]), ""]
    lines += ["## How these numbers were made", ""]
    lines += [run_footer(r) for r in runs]
    return "\n".join(lines) + "\n"


def run_footer(r: dict) -> str:
    """One markdown bullet: the run's command, data, hardware, threads and load, versions, commit, dates.
    A commit with uncommitted changes is flagged."""
    s = r["summary"]
    v = s.get("versions", {})
    commit = s.get("git_commit") or "unknown"
    segs = s.get("segments") or []
    if ran_dirty(commit, segs):
        commit += " (**run from a tree with uncommitted changes**)"
    load = ""
    if s.get("machine_at_start"):
        a, e = s["machine_at_start"], s.get("machine_at_end") or {}
        load = (f"; {a.get('torch_threads')} torch threads, load average {a.get('load_avg')} at start, "
                f"{e.get('load_avg')} at end ({a.get('cores')} cores)")
    return (f"- **{r['name']}**: `{s.get('command', '?')}`; data: {s.get('data_source')} "
            f"({s.get('n_train')} train / {s.get('n_test')} test); hardware: {s.get('hardware')} ({s.get('device')})"
            f"{load}; python {v.get('python')}, torch {v.get('torch')}, spiking-ep {v.get('spiking-ep')}; "
            f"git {commit}; {s.get('started')} → {s.get('finished')}{segments_text(segs)}")


def ran_dirty(commit: str, segs: list[dict]) -> bool:
    """Whether the run's commit, or that of any process that trained part of it, had uncommitted changes."""
    return commit.endswith("+dirty") or any(str(g.get("git_commit", "")).endswith("+dirty") for g in segs)


def segments_text(segs: list[dict]) -> str:
    """A resumed run's parts: which process trained from where, at which commit."""
    if not segs:
        return ""
    parts = []
    for g in segs:
        if "note" in g:
            parts.append(f"up to epoch {g['until']['epoch']}, batch {g['until']['batch']}: {g['note']}")
        else:
            parts.append(f"from epoch {g['from']['epoch']}, batch {g['from']['batch']}: git "
                         f"{g.get('git_commit') or 'unknown'}, started {g.get('started')}, `{g.get('command')}`")
    return f"; resumed, trained by {len(segs)} processes: " + "; ".join(parts)


def collect_raw(run_dirs, dest: str | Path) -> list[Path]:
    """Copy each run's config.yaml, metrics.csv and summary.json (never weights or checkpoints) into
    ``dest/<run name>/``, so that a results folder holds the raw data its tables are made from."""
    import shutil
    out = []
    for d in map(Path, run_dirs):
        target = Path(dest) / d.name
        target.mkdir(parents=True, exist_ok=True)
        for name in RAW_FILES:
            if (d / name).is_file():
                shutil.copyfile(d / name, target / name)
        out.append(target)
    return out


RAW_FILES = ("config.yaml", "metrics.csv", "summary.json")


def _fmt(v) -> str:
    if v is None or v == "":
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def curves_figure(runs: list[dict], title: str):
    """Learning curves: test error and train error (%) per epoch, and W–B angles where the runs log
    them. One legend for all panels, below them (long run descriptions neither cover a curve nor
    run off the figure: the figure grows by the legend's height); whole-number epoch ticks."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    angle_keys = sorted({k for r in runs for k in r["rows"][0] if k.startswith("angle_")})
    ncols = 3 if angle_keys else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4))
    for i, r in enumerate(runs):
        ep = [x["epoch"] for x in r["rows"]]
        label = textwrap.fill(f"{r['name']}: {describe_method(r['config'])}", 40 * ncols)
        axes[0].plot(ep, [100 * x["test_error"] for x in r["rows"]], marker="o", color=f"C{i}", label=label)
        axes[1].plot(ep, [100 * x["train_error"] for x in r["rows"]], marker="o", color=f"C{i}")
        for j, k in enumerate(k for k in angle_keys if k in r["rows"][0]):
            axes[2].plot(ep, [x[k] for x in r["rows"]], marker=".", color=f"C{i}", ls=("-", "--", ":", "-.")[j % 4],
                         label=f"{r['name']}: W–B angle {k[6:]}")
    axes[0].set(xlabel="epoch", ylabel="test error (%)", title="test error")
    axes[1].set(xlabel="epoch", ylabel="train error (%)", title="train error (free phase, during training)")
    if angle_keys:
        axes[2].set(xlabel="epoch", ylabel="degrees", title="angle between W and B")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    ncol = 1 if len(labels) <= 3 else 2
    rows = sum(max(labels[i].count("\n") + 1 for i in range(k, min(k + ncol, len(labels))))
               for k in range(0, len(labels), ncol))
    legend_in = 0.2 + 0.17 * rows                      # legend height in inches at fontsize 7
    fig.set_figheight(4 + legend_in)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    return fig


def plot(runs: list[dict], path: str | Path, title: str) -> None:
    """Write :func:`curves_figure` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt
    fig = curves_figure(runs, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(run_dirs: list[str], *, title: str, out: str | None, plot_path: str | None) -> str:
    runs = [read_run(d) for d in run_dirs]
    text = markdown(runs, title)
    if plot_path:
        plot(runs, plot_path, title)
        text += f"\n![curves]({Path(plot_path).name})\n"
    if out:
        Path(out).write_text(text)
    return text


def sweep_report(rows: list[dict], cfg, *, weights: str, data: str, out: str | None, plot_path: str | None,
                 device) -> str:
    """Markdown table (and plot) of test error and spiking cost against inference time steps."""
    from datetime import datetime, timezone

    import torch

    from .train import command_line, git_commit, hardware, versions
    v = versions()
    spiking = "synops_per_sample" in rows[0]
    head = "| T1 (steps) | test error | test loss |" + (" spikes / neuron / step | synaptic ops / sample |" if spiking else "")
    lines = [f"# Test error vs inference time steps ({cfg.model.kind} network, weights {weights})", "",
             head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        line = f"| {r['T1']} | {100 * r['test_error']:.2f} % | {r['test_loss']:.4f} |"
        if spiking:
            line += f" {r['spikes_per_neuron_step']:.4f} | {r['synops_per_sample']:.4g} |"
        lines.append(line)
    lines += ["", f"Command: `{command_line()}`; data: {data}; hardware: {hardware(torch.device(device))}; "
                  f"python {v['python']}, torch {v['torch']}, spiking-ep {v.get('spiking-ep')}; git {git_commit()}; "
                  f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}"]
    if plot_path:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2 if spiking else 1, figsize=(10 if spiking else 5, 4), squeeze=False)
        ts = [r["T1"] for r in rows]
        ax[0, 0].plot(ts, [100 * r["test_error"] for r in rows], marker="o")
        ax[0, 0].set(xscale="log", xlabel="inference time steps T1", ylabel="test error (%)", title="accuracy")
        if spiking:
            ax[0, 1].plot(ts, [r["synops_per_sample"] for r in rows], marker="o", color="C1")
            ax[0, 1].set(xscale="log", yscale="log" if all(r["synops_per_sample"] > 0 for r in rows) else "linear", xlabel="inference time steps T1", ylabel="synaptic operations / sample",
                         title="cost")
        fig.tight_layout()
        fig.savefig(plot_path, dpi=120)
        plt.close(fig)
        lines += ["", f"![sweep]({Path(plot_path).name})"]
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text)
    return text
