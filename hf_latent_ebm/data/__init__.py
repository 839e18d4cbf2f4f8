"""Dataset builders; each returns a `datasets.Dataset` ready for the models."""

from .images import IMAGE_DATASETS, load_image_dataset
from .multimodal import (BUNDLED_MULTIMODAL, build_mnist_captions, build_polymnist, check_multimodal_dataset,
                         load_multimodal_dataset, load_multimodal_folder, modality_kinds)
from .tabular import (BUNDLED_TABLES, UNLABELLED, TabularPreprocessor, few_label_split, load_tabular_dataset,
                      read_table, validation_split)
from .text import load_text_dataset

__all__ = ["IMAGE_DATASETS", "load_image_dataset", "load_text_dataset", "load_tabular_dataset", "read_table",
           "few_label_split", "validation_split", "TabularPreprocessor", "UNLABELLED", "BUNDLED_TABLES", "BUNDLED_MULTIMODAL",
           "build_polymnist", "build_mnist_captions", "load_multimodal_dataset", "load_multimodal_folder",
           "check_multimodal_dataset", "modality_kinds"]
