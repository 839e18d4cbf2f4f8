"""research/gpu/gpu_data.py: the data files carried to a GPU machine reinstall where the library's loaders read them,
with every pixel and label unchanged."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import hf_latent_ebm.data.images as images

from tests.testing_utils import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "gpu" / "gpu_data.py"


@pytest.fixture
def gpu_data():
    return load_script(SCRIPT, "gpu_data_under_test")


def fake_arrays(seed):
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (120, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, 120, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, 30, dtype=np.uint8)}


def test_installed_data_loads_back_exactly(gpu_data, tmp_path, monkeypatch):
    carried, site = tmp_path / "devdata", tmp_path / "site"
    carried.mkdir()
    arrays = {"mnist": fake_arrays(0), "fashion_mnist": fake_arrays(1)}
    for dataset, values in arrays.items():
        gpu_data.save(gpu_data.data_file(carried, dataset), values)
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", tmp_path / "fashion-mnist")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "mnist", raising=False)
    gpu_data.install(carried, site)
    importlib.invalidate_caches()
    for dataset, load in (("mnist", images._mnist_arrays), ("fashion_mnist", images._fashion_mnist_arrays)):
        for split in ("train", "test"):
            loaded_images, loaded_labels = load(split)
            np.testing.assert_array_equal(loaded_images, arrays[dataset][f"{split}_images"])
            np.testing.assert_array_equal(loaded_labels, arrays[dataset][f"{split}_labels"])


def test_install_without_data_says_how_to_make_it(gpu_data, tmp_path):
    with pytest.raises(SystemExit, match="gpu_data.py pack"):
        gpu_data.install(tmp_path, tmp_path / "site")
