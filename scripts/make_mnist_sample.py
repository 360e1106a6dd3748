#!/usr/bin/env python
"""Build the small MNIST sample shipped with the package.

Writes ``spiking_ep/assets/mnist_sample.npz`` (``np.savez_compressed``) with
keys ``train_x`` / ``test_x`` (``uint8``, N×28×28) and ``train_y`` / ``test_y``
(``uint8`` labels, to keep the file small; the loader widens them to int64):
the first 6000 training and first 1000 test digits of the real MNIST.

It is what ``load_dataset("mnist", allow_embedded=True)`` falls back to when no
MNIST files are found, so offline demos and tests run anywhere.

Usage::

    python scripts/make_mnist_sample.py --data-dir /path/to/dir/with/mnist
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
try:
    from spiking_ep.data import load_dataset, resolve_data_dir
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))
    from spiking_ep.data import load_dataset, resolve_data_dir

DEFAULT_OUT = REPO / "spiking_ep" / "assets" / "mnist_sample.npz"
MAX_BYTES = 3 * 1024 * 1024  # keep the wheel small


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the MNIST IDX files (default: $SPIKING_EP_DATA or the user cache)")
    parser.add_argument("--train", type=int, default=6000, help="number of training digits (first N)")
    parser.add_argument("--test", type=int, default=1000, help="number of test digits (first N)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    # allow_embedded stays False: the sample must come from the real files.
    ds = load_dataset("mnist", resolve_data_dir(args.data_dir), train_subset=args.train, test_subset=args.test)
    print(f"source: {ds.source}")
    arrays = {
        "train_x": ds.train_x[:, 0].numpy(),
        "train_y": ds.train_y.numpy().astype(np.uint8),
        "test_x": ds.test_x[:, 0].numpy(),
        "test_y": ds.test_y.numpy().astype(np.uint8),
    }
    for split in ("train", "test"):
        present = np.unique(arrays[f"{split}_y"])
        if len(present) != 10:
            raise SystemExit(f"{split} sample lacks some classes (has {present.tolist()}); use a larger N")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {len(arrays['train_y'])} train / {len(arrays['test_y'])} test digits, "
          f"{size / 1e6:.2f} MB")
    if size > MAX_BYTES:
        print(f"warning: {size} bytes exceeds the {MAX_BYTES}-byte budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
