"""The multimodal format (described in `hf_latent_ebm.data.multimodal`): its column kinds and the dataset checks."""

import numpy as np

from ..modalities import MODALITIES, modality

LABEL_COLUMN = "label"
SPLITS = ("train", "test")


def _kind_of(name: str, feature) -> str:
    """The registered modality kind whose columns have this feature (`Modality.matches_feature`)."""
    kinds = [kind for kind in MODALITIES.names() if modality(kind).matches_feature(name, feature)]
    if len(kinds) > 1:
        raise ValueError(f"column {name!r} has feature {feature}, which the modality kinds {kinds} all claim")
    if not kinds:
        uses = "; ".join(modality(kind).feature_description for kind in MODALITIES.names())
        raise ValueError(f"column {name!r} has feature {feature}, which is not a modality: use {uses}")
    return kinds[0]


def _check_is_dataset(dataset) -> None:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        raise TypeError(f"expected a datasets.Dataset, got a DatasetDict with splits {list(dataset)}; pass one split, "
                        "e.g. dataset['train']")
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"expected a datasets.Dataset, got {type(dataset).__name__}")


def modality_kinds(dataset, modalities=None) -> dict[str, str]:
    """
    The kind (a registered modality kind: "image", "text", ...) of each modality column of a multimodal dataset
    (see `hf_latent_ebm.data.multimodal`).

    Args:
        dataset (`datasets.Dataset`): The dataset.
        modalities (`list[str]`, *optional*): The columns to report; defaults to every column except `label`.
    """
    _check_is_dataset(dataset)
    columns = list(dataset.features)
    if modalities is None:
        modalities = [name for name in columns if name != LABEL_COLUMN]
    else:
        modalities = [modalities] if isinstance(modalities, str) else list(modalities)
        unknown = [name for name in modalities if name not in dataset.features]
        if unknown:
            raise ValueError(f"modalities {unknown} are not columns of the dataset; its columns are {columns}")
    if not modalities:
        raise ValueError(f"the dataset has no modality columns (columns: {columns}); a multimodal dataset has one "
                         "image or text column per modality")
    return {name: _kind_of(name, dataset.features[name]) for name in modalities}


def check_multimodal_dataset(dataset, modalities=None) -> dict[str, str]:
    """
    Check that `dataset` is in the multimodal format (see `hf_latent_ebm.data.multimodal`) and return `modality_kinds`:
    every modality column is an image or text column, `label` (if present) holds integers, and every example has
    at least one of `modalities` present. Reads null masks from Arrow, so 60k rows take well under a second.

    Args:
        dataset (`datasets.Dataset`): The dataset.
        modalities (`list[str]`, *optional*): The modality columns to use; defaults to every column except `label`.
    """
    import datasets

    kinds = modality_kinds(dataset, modalities)
    label = dataset.features.get(LABEL_COLUMN)
    if label is not None and not (isinstance(label, datasets.ClassLabel) or (
            isinstance(label, datasets.Value) and label.dtype.startswith(("int", "uint")))):
        raise ValueError(f"the {LABEL_COLUMN!r} column must hold integer class ids (ClassLabel or an int Value), "
                         f"got {label}")
    if len(dataset) == 0:
        return kinds
    present = np.zeros(len(dataset), dtype=bool)
    for name in kinds:
        carried = ~dataset.data.column(name).is_null().to_numpy(zero_copy_only=False)
        if dataset._indices is not None:  # a shuffled / selected view: dataset.data is the table it indexes into
            carried = carried[dataset._indices.column(0).to_numpy()]
        if not carried.any():
            raise ValueError(f"modality {name!r} is declared but none of the {len(dataset)} examples carries it: "
                             "drop it from modalities.json (or the modality list), or add examples that have it")
        present |= carried
    empty = np.flatnonzero(~present)
    if len(empty):
        raise ValueError(f"{len(empty)} example(s) have none of the modalities {list(kinds)} present, first at row "
                         f"index {empty[0]} (rows {empty[:10].tolist()}); every example needs at least one")
    return kinds
