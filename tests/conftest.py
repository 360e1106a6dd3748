"""Shared pytest fixtures and markers.

Markers (pyproject.toml): ``slow`` (long training or relaxation) and ``gpu`` (needs CUDA) are left
out of the default run; ``python -m pytest -m slow`` / ``-m gpu`` run them. A ``gpu`` test is
also skipped where ``torch.cuda.is_available()`` is false, so ``-m gpu`` on a CPU machine skips
instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def _shared_data_root() -> Path | None:
    """The offline data folder: ``$SPIKING_EP_DATA`` if set, else ``../shared/data`` next to the
    checkout; None where the chosen folder does not exist."""
    env = os.environ.get("SPIKING_EP_DATA", "")
    path = Path(env).expanduser() if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data_root() -> Path | None:
    """The offline data folder (see :func:`_shared_data_root`), or None: for tests with a fallback."""
    return _shared_data_root()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The read-only offline data folder: ``$SPIKING_EP_DATA`` first, else ``../shared/data``.

    Holds ``mnist/`` (gzipped IDX files) and ``cifar10/cifar10-jpeg.zip``;
    tests that need it are skipped where it does not exist.
    """
    path = _shared_data_root()
    if path is None:
        where = os.environ.get("SPIKING_EP_DATA") or "../shared/data (set SPIKING_EP_DATA)"
        pytest.skip(f"offline data folder {where} not present")
    return path


def pytest_collection_modifyitems(config, items):
    # gpu tests skip (not fail) without CUDA, also when selected with -m gpu
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def one_thread():
    # The test networks are tiny: one thread is faster than two and does not fight other jobs.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
