"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The read-only offline data folder next to the checkout (``../shared/data``).

    Holds ``mnist/`` (gzipped IDX files) and ``cifar10/cifar10-jpeg.zip``;
    tests that need it are skipped where it does not exist.
    """
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"offline data folder {path} not present")
    return path


@pytest.fixture(autouse=True)
def one_thread():
    # The test networks are tiny: one thread is faster than two and does not fight other jobs.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
