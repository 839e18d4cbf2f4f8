"""The bundled multimodal datasets, built offline in the multimodal format (`hf_latent_ebm.data.multimodal`):
PolyMNIST-style five-background digits (`build_polymnist`) and MNIST / Fashion-MNIST images with templated captions
(`build_mnist_captions`)."""

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from .images import FASHION_MNIST_CLASSES, _fashion_mnist_arrays, _mnist_arrays
from .multimodal_format import LABEL_COLUMN, SPLITS

POLYMNIST_MODALITIES = 5
# Colour images that ship inside the scikit-image wheel (no download), one per modality.
POLYMNIST_BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
POLYMNIST_CACHE_ROOT = Path.home() / ".cache" / "hf_latent_ebm" / "polymnist"
_CHUNK_ROWS = 10_000  # rows composited at a time, so the temporaries stay around 100 MB

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Lowercase nouns for the Fashion-MNIST classes; templates use {noun} after an adjective ("a grey ...") and
# {a_noun} where the article depends on the noun ("an ankle boot").
FASHION_NOUNS = ("t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                 "ankle boot")
CAPTION_LABEL_NAMES = [f"digit {digit}" for digit in range(10)] + list(FASHION_MNIST_CLASSES)
# At most 8 words each; {noun} only ever follows a word starting with a consonant, so "a" is always right there.
CAPTION_TEMPLATES = {
    "digit": ("a handwritten {noun}", "the digit {noun} written by hand", "a white {noun} drawn on black",
              "the number {noun}"),
    "fashion": ("a photo of {a_noun}", "a grey {noun} on black", "a small picture of {a_noun}"),
}


# ---- PolyMNIST ----------------------------------------------------------------------------------------------------
def _polymnist_backgrounds() -> list[np.ndarray]:
    try:
        from skimage import data as skimage_data
    except ImportError as error:
        raise ImportError("PolyMNIST's backgrounds are images that ship with scikit-image: pip install scikit-image "
                          "(or pip install hf-latent-ebm[multimodal])") from error
    return [np.ascontiguousarray(getattr(skimage_data, name)()[..., :3]) for name in POLYMNIST_BACKGROUNDS]


def _same_class_partners(labels: np.ndarray, rng: np.random.Generator, num_modalities: int) -> np.ndarray:
    """(num_modalities, N) image indices: row i of modality m is an image of class labels[i], m = 0 is i itself.

    Each class's images are put on a random cycle and modality m takes the image m steps along it, so every
    modality is a permutation within classes (as the original's per-modality shuffles) and, unlike independent
    shuffles, the images of one row are always distinct (for classes with at least `num_modalities` images).
    """
    partners = np.empty((num_modalities, len(labels)), dtype=np.int64)
    for label in np.unique(labels):
        cycle = rng.permutation(np.flatnonzero(labels == label))
        for modality in range(num_modalities):
            partners[modality, cycle] = np.roll(cycle, -modality)
    return partners


def _composite(digits: np.ndarray, background: np.ndarray, tops: np.ndarray, lefts: np.ndarray) -> np.ndarray:
    """(n, 3, 28, 28) uint8: each digit on its 28x28 crop, with the crop's colours inverted where the digit is bright.

    This is the original's rule (Sutter et al. 2021): pixels where the MNIST intensity is above one half become
    255 - crop, the rest keep the crop, so the digit stays visible on light and dark backgrounds alike.
    """
    windows = np.lib.stride_tricks.sliding_window_view(background, (28, 28), axis=(0, 1))  # (H-27, W-27, 3, 28, 28)
    crops = windows[tops, lefts]
    return np.where((digits > 127)[:, None], 255 - crops, crops)


def _nested_list_array(array: np.ndarray):
    """An (N, ...) numpy array as Arrow nested lists, the storage of datasets' ArrayXD features.

    `Dataset.from_dict` takes these as they are; handing it the numpy array instead converts every cell in Python,
    about ten times slower (20 s for PolyMNIST's 300k images).
    """
    import pyarrow as pa

    nested = pa.array(array.reshape(-1))
    for size in reversed(array.shape[1:]):
        nested = pa.ListArray.from_arrays(pa.array(np.arange(0, len(nested) + 1, size, dtype=np.int32)), nested)
    return nested


def _polymnist_arrays(split: str, num_examples: int | None, seed: int):
    backgrounds = _polymnist_backgrounds()  # first: a missing scikit-image fails before the slow MNIST read
    images, labels = _mnist_arrays(split)
    # The split is part of the seed so that train and test crops differ for the same `seed`.
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    partners = _same_class_partners(labels, rng, POLYMNIST_MODALITIES)
    # Crops are drawn for every row before truncating, so the first N rows match the full build's first N rows.
    corners = [(rng.integers(0, background.shape[0] - 27, len(labels)),
                rng.integers(0, background.shape[1] - 27, len(labels))) for background in backgrounds]
    count = len(labels) if num_examples is None else min(num_examples, len(labels))
    for start in range(0, count, _CHUNK_ROWS):
        rows = slice(start, min(start + _CHUNK_ROWS, count))
        chunk = {f"m{modality}": _nested_list_array(
                     _composite(images[partners[modality, rows]], background, tops[rows], lefts[rows]))
                 for modality, (background, (tops, lefts)) in enumerate(zip(backgrounds, corners))}
        chunk[LABEL_COLUMN] = labels[rows]
        yield chunk


def polymnist_cache_path(split: str = "train", num_examples: int | None = None, seed: int = 0,
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder that `build_polymnist` saves to and loads from for these arguments."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else POLYMNIST_CACHE_ROOT
    return root / f"{split}-{num_examples if num_examples is not None else 'all'}-seed{seed}"


def build_polymnist(split: str = "train", num_examples: int | None = None, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None):
    """
    PolyMNIST (Sutter, Daunhawer and Vogt, ICLR 2021) built offline: a `datasets.Dataset` with five image
    modalities `m0`..`m4` (Array3D uint8, (3, 28, 28)) and `label` (ClassLabel "0".."9").

    Row i's modalities show five different MNIST images of the same digit (modality 0 is MNIST image i of the split;
    each other modality is a seeded permutation of the split's images within each class). Modality m's digit is
    composited onto a random 28x28 crop of background image m: the crop is kept where the digit is dark and its
    colours are inverted (255 - crop) where the MNIST intensity is above one half, the original's rule.

    The backgrounds are five colour images from scikit-image (astronaut, coffee, chelsea, rocket,
    immunohistochemistry), not the original's five, so coherence and quality numbers are comparable with the
    papers' in scale only.

    The first call builds the split (about 60k x 5 images for "train") and saves it with `save_to_disk` under
    `cache_dir`, written to a temporary folder and renamed so an interrupted build leaves no partial cache; later
    calls with the same arguments load it from there (memory-mapped).

    Args:
        split (`str`, defaults to "train"): "train" (MNIST's 60k training images) or "test" (its 10k test images).
        num_examples (`int`, *optional*): Keep the first `num_examples` rows; they equal the full build's first rows.
        seed (`int`, defaults to 0): Seeds the permutations and the crops (combined with the split).
        cache_dir (`str` or `os.PathLike`, *optional*): Folder of cached builds; defaults to
            ~/.cache/hf_latent_ebm/polymnist. Each build is one subfolder `<split>-<num_examples or all>-seed<seed>`.
    """
    import datasets

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num_examples is not None and (isinstance(num_examples, bool) or not isinstance(num_examples, int)
                                     or num_examples < 1):
        raise ValueError(f"num_examples must be a positive int or None, got {num_examples!r}")
    target = polymnist_cache_path(split, num_examples, seed, cache_dir)
    if target.is_dir():
        return datasets.load_from_disk(str(target))

    features = datasets.Features({
        **{f"m{modality}": datasets.Array3D(shape=(3, 28, 28), dtype="uint8")
           for modality in range(POLYMNIST_MODALITIES)},
        LABEL_COLUMN: datasets.ClassLabel(names=[str(digit) for digit in range(10)]),
    })
    dataset = datasets.concatenate_datasets([datasets.Dataset.from_dict(chunk, features=features)
                                             for chunk in _polymnist_arrays(split, num_examples, seed)])
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        dataset.save_to_disk(str(temporary))
        try:
            os.rename(temporary, target)
        except OSError:
            if not target.is_dir():  # not another process finishing the same build first
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return datasets.load_from_disk(str(target))


# ---- MNIST / Fashion-MNIST with captions --------------------------------------------------------------------------
def caption_for(label: int, template_index: int) -> str:
    """
    The caption of class `label` (an index into `CAPTION_LABEL_NAMES`: 0-9 digits, 10-19 Fashion-MNIST classes)
    written with template `template_index` of its kind in `CAPTION_TEMPLATES`.
    """
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < len(
            CAPTION_LABEL_NAMES):
        raise ValueError(f"label must be an int in [0, {len(CAPTION_LABEL_NAMES)}), got {label!r}")
    kind, noun = ("digit", DIGIT_WORDS[label]) if label < 10 else ("fashion", FASHION_NOUNS[label - 10])
    templates = CAPTION_TEMPLATES[kind]
    if isinstance(template_index, bool) or not isinstance(template_index, (int, np.integer)) or not (
            0 <= template_index < len(templates)):
        raise ValueError(f"template_index for a {kind} label must be an int in [0, {len(templates)}), "
                         f"got {template_index!r}")
    article = "an" if noun[0] in "aeiou" else "a"
    return templates[template_index].format(noun=noun, a_noun=f"{article} {noun}")


def build_mnist_captions(split: str = "train", num_examples: int | None = None, seed: int = 0):
    """
    An image + text dataset: every MNIST and Fashion-MNIST image of `split`, shuffled together, each with a
    templated caption of its class. Columns: `image` (Array3D uint8, (1, 28, 28)), `caption` (lowercase, at most 8
    words, e.g. "a handwritten seven", "a grey sneaker on black"), `label` (ClassLabel with `CAPTION_LABEL_NAMES`:
    "digit 0".."digit 9", then the ten Fashion-MNIST classes).

    Args:
        split (`str`, defaults to "train"): "train" (60k + 60k images) or "test" (10k + 10k).
        num_examples (`int`, *optional*): Keep the first `num_examples` rows of the shuffled set.
        seed (`int`, defaults to 0): Seeds the shuffle and each example's template.
    """
    import datasets

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num_examples is not None and (isinstance(num_examples, bool) or not isinstance(num_examples, int)
                                     or num_examples < 1):
        raise ValueError(f"num_examples must be a positive int or None, got {num_examples!r}")
    # Fashion-MNIST first: it is the one that may be missing, and its error should not wait for MNIST to load.
    fashion_images, fashion_labels = _fashion_mnist_arrays(split)
    digit_images, digit_labels = _mnist_arrays(split)
    images = np.concatenate([digit_images, fashion_images])
    labels = np.concatenate([digit_labels, fashion_labels + 10])
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    order = rng.permutation(len(labels))
    template_draws = rng.random(len(labels))  # one uniform per example, scaled to its kind's template count
    count = len(labels) if num_examples is None else min(num_examples, len(labels))
    order, template_draws = order[:count], template_draws[:count]
    labels = labels[order]
    counts = np.where(labels < 10, len(CAPTION_TEMPLATES["digit"]), len(CAPTION_TEMPLATES["fashion"]))
    template_indices = (template_draws * counts).astype(np.int64)
    table = {(label, index): caption_for(label, index)
             for label in range(len(CAPTION_LABEL_NAMES))
             for index in range(len(CAPTION_TEMPLATES["digit" if label < 10 else "fashion"]))}
    captions = [table[pair] for pair in zip(labels.tolist(), template_indices.tolist())]
    features = datasets.Features({
        "image": datasets.Array3D(shape=(1, 28, 28), dtype="uint8"),
        "caption": datasets.Value("string"),
        LABEL_COLUMN: datasets.ClassLabel(names=CAPTION_LABEL_NAMES),
    })
    return datasets.Dataset.from_dict({"image": _nested_list_array(images[order][:, None]), "caption": captions,
                                       LABEL_COLUMN: labels}, features=features)
