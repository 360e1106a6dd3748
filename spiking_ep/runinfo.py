"""Where and how a number was made: versions, command, git commit, hardware, threads, machine load.

Every run folder's summary, every report and every benchmark records these next to its numbers.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        from importlib.metadata import version
        out["spiking-ep"] = version("spiking-ep")
    except Exception:
        pass
    return out


def command_line() -> str:
    """The command that started this process, with the console-script path shortened."""
    import shlex
    if Path(sys.argv[0]).name in ("spiking-ep", "cli.py", "__main__.py"):
        return "spiking-ep " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return " ".join(shlex.quote(a) for a in sys.argv)


# What results scripts write (tables, plots, reports, copied raw run files): a script that trains,
# reports, then trains again must not mark its own later runs "+dirty" with its earlier output.
_OUTPUTS = [f":(top,exclude,glob)results/**/{g}" for g in ("*.md", "*.png", "*.json", "runs/**")]


def git_commit(where: str | Path | None = None) -> str | None:
    """HEAD's commit of the repository holding ``where`` (default: this package), with ``+dirty``
    when tracked files differ from it (other than results outputs); None outside a repository."""
    here = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", *_OUTPUTS],
                               cwd=here, capture_output=True, text=True, timeout=5)
    except Exception:
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def machine_load() -> dict:
    """Torch threads, cores and the 1/5/15-minute load averages (runnable processes) of this machine.

    A timing means little without them: on 2 cores, a second busy process halves the speed.
    """
    out = {"torch_threads": torch.get_num_threads(), "cores": os.cpu_count()}
    try:
        out["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        out["load_avg"] = None
    return out


def _running_now(samples: int = 5, interval: float = 0.02) -> int | None:
    """The most runnable tasks (``procs_running`` in /proc/stat, this process included) seen in a few
    samples; None where /proc/stat is not available."""
    seen = []
    for i in range(samples):
        try:
            with open("/proc/stat") as f:
                seen += [int(line.split()[1]) for line in f if line.startswith("procs_running")]
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval)
    return max(seen) if seen else None


def busy_elsewhere() -> float:
    """How many cores other processes keep busy: the 1-minute load average, or fewer if the runnable
    tasks right now say so. The load average lags by about a minute (a job that has just ended still
    counts in it); the instantaneous count does not, but is noisy, so the smaller of the two is used."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    running = _running_now()
    return load if running is None else min(load, float(max(running - 1, 0)))


def choose_threads(requested: int | None, log=print) -> int:
    """Set torch's thread count and return it: ``requested``, or by default the cores not already
    busy (cores − :func:`busy_elsewhere`, at least 1). Warns when the machine is oversubscribed:
    here a run slowed 38× while another process held a core and torch used both."""
    cores = os.cpu_count() or 1
    busy = busy_elsewhere()
    n = requested if requested else max(1, min(torch.get_num_threads(), int(cores - busy + 0.5)))
    torch.set_num_threads(n)
    if n + busy > cores + 0.5:
        log(f"warning: {n} torch thread(s) while other processes keep {busy:.1f} of {cores} cores busy: the machine "
            f"is oversubscribed and every process slows down; set train.threads (or OMP_NUM_THREADS) so that "
            f"threads + other busy processes ≤ cores")
    return n


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance(device: torch.device | str = "cpu") -> dict:
    """All of the above in one dict (for results JSON / markdown footers)."""
    device = torch.device(device)
    return {"command": command_line(), "git_commit": git_commit(), "hardware": hardware(device),
            "device": str(device), "versions": versions(), **machine_load(), "date": now()}


def provenance_line(p: dict) -> str:
    """One markdown line from :func:`provenance`, flagging a dirty tree."""
    v = p.get("versions", {})
    commit = p.get("git_commit") or "unknown"
    if commit.endswith("+dirty"):
        commit += " (**uncommitted changes: not reproducible from the commit alone**)"
    load = p.get("load_avg")
    return (f"Command: `{p.get('command')}`; hardware: {p.get('hardware')} ({p.get('device')}); "
            f"{p.get('torch_threads')} torch threads, load average {load} on {p.get('cores')} cores; "
            f"python {v.get('python')}, torch {v.get('torch')}, spiking-ep {v.get('spiking-ep')}; "
            f"git {commit}; {p.get('date')}")
