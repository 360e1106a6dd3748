"""Where data and derived files live, and the error every loader raises.

:func:`resolve_data_dir`: explicit argument (the config's ``data.root``), then
``$SPIKING_EP_DATA``, then a per-user cache dir; :func:`resolve_cache_dir` the
same for decoded-image caches (``$SPIKING_EP_CACHE``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "SPIKING_EP_DATA"
CACHE_ENV_VAR = "SPIKING_EP_CACHE"
# How the config file spells the data directory; only used in error messages.
_CONFIG_KEY = "data.root"


class DataError(ValueError):
    """A dataset is missing, incomplete or corrupt. The message names the file(s)."""



def _user_cache_root() -> Path:
    # XDG says a relative $XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "spiking-ep"


def _resolve_dir(explicit, env_var: str, sub: str) -> Path:
    if explicit is not None and os.fspath(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(env_var, "")
    if env:
        return Path(env).expanduser()
    return _user_cache_root() / sub


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Directory that holds (or will hold) the datasets.

    Precedence: ``explicit`` (e.g. the config's ``data.root``) if given and
    non-empty, else ``$SPIKING_EP_DATA``, else ``$XDG_CACHE_HOME/spiking-ep/data``
    (``~/.cache/spiking-ep/data`` when ``XDG_CACHE_HOME`` is unset). The
    directory is not created and need not exist.
    """
    return _resolve_dir(explicit, DATA_ENV_VAR, "data")


def resolve_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Directory for derived files (decoded CIFAR-10 image trees).

    Precedence: ``explicit``, else ``$SPIKING_EP_CACHE``, else
    ``$XDG_CACHE_HOME/spiking-ep/cache`` (``~/.cache/spiking-ep/cache``).
    """
    return _resolve_dir(explicit, CACHE_ENV_VAR, "cache")
