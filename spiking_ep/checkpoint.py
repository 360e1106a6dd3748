"""Atomic checkpoint files and weight loading with architecture checks."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or belongs to another architecture; the message names it."""


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``.

    A reader (or a resumed run after SIGKILL) sees either the old file or the new one, never a
    partial write.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, so the new file survives a crash."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically (same scheme as :func:`atomic_save`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_file(path: str | Path) -> dict:
    """Load a checkpoint (tensors and plain Python values only: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle of the wrong kind, ...
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from None


def weights_path(path: str | Path) -> Path:
    """A run folder → its ``weights.pt``; a file is returned as is."""
    path = Path(path)
    return path / "weights.pt" if path.is_dir() else path


def load_weights(net: nn.Module, path: str | Path) -> None:
    """Load a weights-only checkpoint (or a run folder's) into ``net``, checking names and shapes first."""
    path = weights_path(path)
    state = load_file(path)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    check_state_dict(net, state, str(path))
    net.load_state_dict(state)


def check_state_dict(net: nn.Module, state: dict, source: str) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or mis-shaped parameter."""
    own = net.state_dict()
    problems = [f"missing '{k}' {tuple(v.shape)}" for k, v in own.items() if k not in state]
    problems += [f"unexpected '{k}'" for k in state if k not in own]
    problems += [f"'{k}' has shape {tuple(state[k].shape)}, the model needs {tuple(v.shape)}"
                 for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if problems:
        raise CheckpointError(f"{source} is from another architecture: " + "; ".join(problems))
