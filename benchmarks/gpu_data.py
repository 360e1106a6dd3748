"""Write a CIFAR-10 subset in the official ``cifar-10-batches-py`` layout, to carry to a GPU machine.

    SPIKING_EP_DATA=../shared/data python benchmarks/gpu_data.py [--out .gpu/data] [--per-batch 2000] [--test 2000]

The device machine reaches nothing outside itself and receives at most 64 MiB with the working
tree, so benchmarks/gpu_check.sh trains on this subset (5 × per-batch training images, the first
--test test images; 3,072 bytes each). Read back by ``spiking_ep.data`` like any official copy.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from spiking_ep.data import load_dataset


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".gpu/data")
    ap.add_argument("--per-batch", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2000)
    args = ap.parse_args(argv)
    ds = load_dataset("cifar10", None, train_subset=5 * args.per_batch, test_subset=args.test)
    folder = Path(args.out) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name, x, y):
        data = x.numpy().reshape(len(x), -1).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": y.tolist(), b"batch_label": name.encode()}, f, protocol=4)
    for i in range(5):
        sl = slice(i * args.per_batch, (i + 1) * args.per_batch)
        dump(f"data_batch_{i + 1}", ds.train_x[sl], ds.train_y[sl])
    dump("test_batch", ds.test_x, ds.test_y)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names]}, f, protocol=4)
    print(f"wrote {folder} ({5 * args.per_batch} train / {args.test} test images) from {ds.source}")


if __name__ == "__main__":
    main()
