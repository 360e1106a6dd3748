"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


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
