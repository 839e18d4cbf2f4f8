"""Multimodal datasets: the format users give us, two bundled builders, and a loader for a folder of files.

The multimodal format
---------------------
A multimodal dataset is a `datasets.Dataset` with one column per modality plus an optional `label` column
(integer class ids; a `datasets.ClassLabel` with names where they are known). Every column other than `label` is a
modality, and its feature declares its kind:

- image: a `datasets.Image()` column (PIL images), or a `datasets.Array3D(dtype="uint8", shape=(C, H, W))` column
  (channel-first uint8 arrays; the bundled builders use these because they read much faster than encoded images).
- text: a `datasets.Value("string")` column.
- any other kind registered with `hf_latent_ebm.modalities.register_modality`: the columns its `matches_feature`
  claims.

A modality missing from an example is `None` in that example's cell; every example must have at least one
modality. `modality_kinds` reads the kinds from the features and `check_multimodal_dataset` also checks the rows.

Note that `dataset.with_format("numpy")` (or "torch") turns uint8 Array3D cells into int64 arrays, as datasets
does for every integer array; `with_format("numpy", dtype=np.uint8)` keeps them uint8.

Bundled builders, both offline (in `multimodal_builders`; the format's checks are in `multimodal_format`, and this
module re-exports both):
- `build_polymnist`: PolyMNIST-style, five image modalities of the same digit on five different backgrounds.
- `build_mnist_captions`: MNIST and Fashion-MNIST images paired with templated English captions.
"""

import json
import os
from pathlib import Path

from .multimodal_builders import (CAPTION_LABEL_NAMES, CAPTION_TEMPLATES, DIGIT_WORDS, FASHION_NOUNS,
                                  POLYMNIST_BACKGROUNDS, POLYMNIST_MODALITIES, build_mnist_captions, build_polymnist,
                                  caption_for, polymnist_cache_path)
from ..modalities import MODALITIES, modality
from .multimodal_format import LABEL_COLUMN, SPLITS, check_multimodal_dataset, modality_kinds

__all__ = ["LABEL_COLUMN", "SPLITS", "modality_kinds", "check_multimodal_dataset",
           "build_polymnist", "polymnist_cache_path", "POLYMNIST_MODALITIES", "POLYMNIST_BACKGROUNDS",
           "build_mnist_captions", "caption_for", "CAPTION_LABEL_NAMES", "CAPTION_TEMPLATES", "DIGIT_WORDS",
           "FASHION_NOUNS", "load_multimodal_folder", "BUNDLED_MULTIMODAL", "load_multimodal_dataset"]


# ---- a folder of the user's files -----------------------------------------------------------------------------------
def _read_modalities_json(path: Path) -> dict[str, str]:
    spec_path = path / "modalities.json"
    if not spec_path.is_file():
        raise ValueError(f"{path} has no modalities.json; expected a JSON object naming each modality's kind, e.g. "
                         '{"photo": "image", "caption": "text"}')
    try:
        spec = json.loads(spec_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{spec_path} is not valid JSON: {error}") from error
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{spec_path} must be a non-empty JSON object {{name: 'image' | 'text'}}, got {spec!r}")
    readable = [kind for kind in MODALITIES.names() if modality(kind).folder_value_description is not None]
    bad = {name: kind for name, kind in spec.items() if kind not in readable}
    if bad:
        raise ValueError(f"{spec_path}: modality kinds must be one of {readable} (the kinds a folder holds), "
                         f"got {bad}")
    if LABEL_COLUMN in spec:
        raise ValueError(f"{spec_path}: {LABEL_COLUMN!r} is the label column, not a modality name")
    return spec


def load_multimodal_folder(path: str | os.PathLike, split: str = "train"):
    """
    Load a folder of multimodal examples as a `datasets.Dataset` in the multimodal format (module docstring):
    `datasets.Image()` columns for image modalities, string columns for text, and `label` (int64, -100 where an
    example has none, as in the tabular loader) if any example has a label.

    Layout::

        path/
          modalities.json       {"photo": "image", "caption": "text", ...}: each modality's name and kind
          train.jsonl           one example per line: {"photo": "images/0001.png", "caption": "a red bird",
          test.jsonl             "label": 3}; or a single index.jsonl used for every split
          images/...            image files, named relative to `path`

    In an example, a missing key or a null value is a missing modality (at least one must be present); `label`
    is an optional non-negative int; blank lines are skipped. Every line and every image file is checked before
    any image is loaded; images are read lazily from their files when accessed.

    Args:
        path (`str` or `os.PathLike`): The folder.
        split (`str`, defaults to "train"): Reads `<split>.jsonl`, or `index.jsonl` when that file does not exist.
    """
    import datasets

    path = Path(path).expanduser().resolve()  # image cells hold absolute paths, valid from any working folder
    if not path.is_dir():
        raise ValueError(f"multimodal folder {path} does not exist or is not a folder")
    kinds = _read_modalities_json(path)
    handlers = {name: modality(kind) for name, kind in kinds.items()}
    index = path / f"{split}.jsonl"
    if not index.is_file():
        index = path / "index.jsonl"
    if not index.is_file():
        raise ValueError(f"{path} has neither {split}.jsonl nor index.jsonl; expected one JSON example per line")

    columns = {name: [] for name in kinds}
    labels, line_numbers, missing_files = [], [], []
    for number, line in enumerate(index.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{index} line {number} is not valid JSON: {error}") from error
        if not isinstance(example, dict):
            raise ValueError(f"{index} line {number}: expected a JSON object, got {type(example).__name__}")
        unknown = [key for key in example if key not in kinds and key != LABEL_COLUMN]
        if unknown:
            raise ValueError(f"{index} line {number}: keys {unknown} are not modalities declared in modalities.json "
                             f"{list(kinds)} (nor {LABEL_COLUMN!r})")
        if all(example.get(name) is None for name in kinds):
            raise ValueError(f"{index} line {number}: no modality present; each example needs at least one of "
                             f"{list(kinds)}")
        label = example.get(LABEL_COLUMN)
        if label is not None and (isinstance(label, bool) or not isinstance(label, int) or label < 0):
            raise ValueError(f"{index} line {number}: label must be a non-negative int, got {label!r}")
        for name, handler in handlers.items():
            value = example.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{index} line {number}: {name!r} must be {handler.folder_value_description} or "
                                 f"null, got {value!r}")
            if value is not None:
                value = handler.folder_cell(path, value)
                if handler.missing(value):
                    missing_files.append((kinds[name], f"{value} (line {number})"))
            columns[name].append(value)
        labels.append(label)
        line_numbers.append(number)
    if not line_numbers:
        raise ValueError(f"{index} has no examples")
    if missing_files:
        missing_kinds = "/".join(sorted({kind for kind, _ in missing_files}))
        raise ValueError(f"{len(missing_files)} {missing_kinds} file(s) named in {index} do not exist: "
                         f"{', '.join(file for _, file in missing_files[:10])}")
    # Every cell is checked (image headers read) before the dataset is made, rather than mid-training.
    for name, handler in handlers.items():
        for cell, number in zip(columns[name], line_numbers):
            if cell is not None:
                try:
                    handler.check_cell(cell)
                except ValueError as error:
                    raise ValueError(f"{index} line {number}: {error}") from error

    features = {name: handler.folder_feature() for name, handler in handlers.items()}
    if any(label is not None for label in labels):
        features[LABEL_COLUMN] = datasets.Value("int64")
        columns[LABEL_COLUMN] = [-100 if label is None else label for label in labels]
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


BUNDLED_MULTIMODAL = ("polymnist", "mnist-captions")


def load_multimodal_dataset(name: str, split: str = "train", num_examples: int | None = None, seed: int = 0):
    """
    A multimodal dataset by name: "polymnist" (`build_polymnist`), "mnist-captions" (`build_mnist_captions`), a
    folder in the `load_multimodal_folder` layout, or a folder written by `Dataset.save_to_disk` (a user's dataset in
    the multimodal format). `num_examples` keeps the first N examples.
    """
    import datasets

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name == "polymnist":
        return build_polymnist(split, num_examples=num_examples, seed=seed)
    if name in ("mnist-captions", "mnist_captions"):
        return build_mnist_captions(split, num_examples=num_examples, seed=seed)
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ValueError(f"unknown multimodal dataset {name!r}: use one of {BUNDLED_MULTIMODAL} or a folder (with "
                         "modalities.json and an index, or written by Dataset.save_to_disk)")
    if (path / "modalities.json").is_file():
        dataset = load_multimodal_folder(path, split)
    else:
        try:
            dataset = datasets.load_from_disk(str(path))
        except FileNotFoundError as error:
            raise ValueError(f"{path} is neither a multimodal folder (no modalities.json) nor a saved dataset: "
                             f"{error}") from error
        if isinstance(dataset, datasets.DatasetDict):
            if split not in dataset:
                raise ValueError(f"the saved dataset at {path} has splits {list(dataset)}, not {split!r}")
            dataset = dataset[split]
    if num_examples is not None:
        dataset = dataset.select(range(min(num_examples, len(dataset))))
    check_multimodal_dataset(dataset)
    return dataset
