"""Diagnosis-prediction metrics of Chet as a local `evaluate` module:
evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("ehr_diagnosis"))."""

import datasets
import evaluate
import torch

from hf_latent_ebm.metrics.ehr import diagnosis_metrics

_DESCRIPTION = """Next-visit diagnosis prediction over C codes, as evaluated for Chet (Lu et al. 2022). weighted_f1:
each patient's |y| highest-scored codes are predicted positive, then per-code F1 is averaged with each code's support
as weight (scikit-learn's f1_score(average="weighted")). recall_at_k: mean over patients with true codes of the
fraction of their true codes among their k highest-scored codes. Ties in scores go to the lower code index."""

_CITATION = """@inproceedings{lu2022context, title={Context-aware Health Event Prediction via Transition Functions on
Dynamic Disease Graphs}, author={Lu, Chang and Han, Tian and Ning, Yue}, booktitle={AAAI}, year={2022}}"""

_INPUTS = """predictions: list of float rows, one score per code for each patient (all rows of length C).
references: list of 0/1 int rows, the patient's true codes. ks (optional, default (10, 20)): the k of recall@k.
Returns {"weighted_f1": float, "recall_at_10": float, "recall_at_20": float}, fractions in [0, 1]."""


class EHRDiagnosis(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({
                                       "predictions": datasets.Sequence(datasets.Value("float32")),
                                       "references": datasets.Sequence(datasets.Value("int64"))}))

    def _compute(self, predictions, references, ks=(10, 20)):
        lengths = {len(row) for row in predictions} | {len(row) for row in references}
        if len(lengths) > 1:
            raise ValueError(f"every prediction and reference row needs one entry per code, got row lengths "
                             f"{sorted(lengths)}")
        return diagnosis_metrics(torch.tensor(predictions, dtype=torch.float32),
                                 torch.tensor(references, dtype=torch.long), ks=ks)
