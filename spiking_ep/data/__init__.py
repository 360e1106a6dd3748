"""Datasets (MNIST, Fashion-MNIST, CIFAR-10), batching and augmentation.

Everything here is plain functions over tensors; the only state is the
``torch.Generator`` the caller passes in, so an experiment is reproducible from
its seed and resumable from a saved generator state.

Loading
    :func:`load_dataset` returns a :class:`Dataset` holding the raw ``uint8``
    pixels (``N×C×H×W``) and ``int64`` labels of both splits. Files are looked
    for in a data directory (:func:`resolve_data_dir`: explicit argument, then
    ``$SPIKING_EP_DATA``, then a per-user cache dir). Missing or damaged files
    raise :class:`DataError` with a message that says which file and what to do.

Batching
    :func:`iterate_batches` shuffles with the caller's generator, applies the
    optional random crop / horizontal flip (:func:`augment`) to the ``uint8``
    batch and converts it with :func:`normalize`, on the requested device.

Modules
    ``paths`` (data / cache folders, :class:`DataError`), ``dataset`` (the
    :class:`Dataset` record and per-dataset constants), ``idx`` (MNIST and
    Fashion-MNIST IDX files), ``cifar`` (CIFAR-10 pickles, image trees and
    their decode cache), ``load`` (:func:`load_dataset`), ``augmentation``
    (:func:`augment`) and ``batches`` (:func:`normalize`,
    :func:`iterate_batches`). Everything public is re-exported here.
"""

from __future__ import annotations

# Private names re-exported for existing callers: _SPECS / _canonical_name (export),
# _draw_augment_params (tests). Helpers that tests monkeypatch (idx._SYSTEM_IDX_DIRS,
# cifar._decode_image) are deliberately not re-exported: a patch of the package attribute
# would change nothing, so it must name the module that uses them.
from . import cifar, idx
from .augmentation import PAD_MODES, _apply_augment, _draw_augment_params, augment
from .batches import iterate_batches, normalize, num_batches
from .dataset import _SPECS, DATASET_NAMES, Dataset, _canonical_name
from .load import load_dataset
from .paths import CACHE_ENV_VAR, DATA_ENV_VAR, DataError, resolve_cache_dir, resolve_data_dir

__all__ = [
    "DATA_ENV_VAR",
    "CACHE_ENV_VAR",
    "DATASET_NAMES",
    "PAD_MODES",
    "DataError",
    "Dataset",
    "resolve_data_dir",
    "resolve_cache_dir",
    "load_dataset",
    "normalize",
    "augment",
    "iterate_batches",
    "num_batches",
]
