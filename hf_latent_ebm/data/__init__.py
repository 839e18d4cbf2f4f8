"""Dataset builders; each returns a `datasets.Dataset` ready for the models."""

from .images import IMAGE_DATASETS, load_image_dataset
from .text import load_text_dataset

__all__ = ["IMAGE_DATASETS", "load_image_dataset", "load_text_dataset"]
