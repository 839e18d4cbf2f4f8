"""Chet (Lu, Han & Ning, AAAI 2022): health event prediction over dynamic disease graphs. A model family of its own:
it shares the trainer, checkpointing and hub code with the latent-EBM models, not their parts. Work in progress
(issue 23): ICD-9 code handling and the synthetic MIMIC-III-shaped data come first."""

from .codes import ICD9_CHAPTERS, dot_icd9, icd9_chapter
from .synthetic import synthesize_mimic3

__all__ = ["ICD9_CHAPTERS", "dot_icd9", "icd9_chapter", "synthesize_mimic3"]
