"""Dataset builders; each returns a `datasets.Dataset` ready for the models."""

from .images import IMAGE_DATASETS, load_image_dataset
from .tabular import (BUNDLED_TABLES, UNLABELLED, TabularPreprocessor, few_label_split, load_tabular_dataset,
                      read_table)
from .text import load_text_dataset

__all__ = ["IMAGE_DATASETS", "load_image_dataset", "load_text_dataset", "load_tabular_dataset", "read_table",
           "few_label_split", "TabularPreprocessor", "UNLABELLED", "BUNDLED_TABLES"]
