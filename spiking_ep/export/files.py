"""Atomic file writes: a temporary file in the target folder, written, checked, fsynced, renamed."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..checkpoint import fsync_dir


def write_atomic(path: str | Path, write: Callable[[Path], None], check: Callable[[Path], None] | None = None) -> int:
    """``write(tmp)``, ``check(tmp)`` (raises if the file is wrong), then rename onto ``path``.

    A reader sees the old file or the complete, checked new one, never a partial write; on any
    error the temporary file is removed and ``path`` is untouched. Returns the file size in bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path.stat().st_size
