"""Chet (Lu, Han & Ning, AAAI 2022): health event prediction over dynamic disease graphs. A model family of its own:
it shares the checkpointing, card and hub code with the latent-EBM models, not their parts.

The path: `hf_latent_ebm.data.ehr.load_mimic3` / `load_mimic4` (or `synthesize_mimic3` for a stand-in) ->
`prepare_cohort` (split, vocabulary, co-occurrence graph, neighbours, roles) -> `PackedCohort` batches ->
`ChetForHealthEventPrediction`, trained by `EHRTrainer`.
"""

from ..data.icd9 import ICD9_CHAPTERS, dot_icd9, icd9_chapter
from ..model_kinds import register_model_kind
from .cohort import CooccurrenceGraph, PackedCohort, encode_patients, prepare_cohort, split_patients
from .configuration_chet import ChetConfig
from .modeling_chet import ChetForHealthEventPrediction, ChetOutput
from .synthetic import synthesize_mimic3

register_model_kind(ChetForHealthEventPrediction, "chet.md.jinja",
                    tags=("chet", "health-event-prediction", "ehr", "disease-graph", "hf-latent-ebm"))

__all__ = ["ICD9_CHAPTERS", "dot_icd9", "icd9_chapter", "synthesize_mimic3", "CooccurrenceGraph", "PackedCohort",
           "encode_patients", "prepare_cohort", "split_patients", "ChetConfig", "ChetForHealthEventPrediction",
           "ChetOutput"]
