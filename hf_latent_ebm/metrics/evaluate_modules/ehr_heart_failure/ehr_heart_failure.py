"""Heart-failure-prediction metrics of Chet as a local `evaluate` module:
evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("ehr_heart_failure"))."""

import datasets
import evaluate
import torch

from hf_latent_ebm.metrics.ehr import heart_failure_metrics

_DESCRIPTION = """Binary heart-failure prediction, as evaluated for Chet (Lu et al. 2022): auc is the ROC-AUC of the
predicted probabilities (tied scores share their mean rank, as in scikit-learn's roc_auc_score), pr_auc their
average precision (scikit-learn's average_precision_score), f1 the F1 of the positive class with probability >
threshold predicted positive (the decision threshold, e.g. one chosen on validation with
hf_latent_ebm.metrics.ehr.f1_optimal_threshold) and f1_at_0.5 the same at 0.5."""

_CITATION = """@inproceedings{lu2022context, title={Context-aware Health Event Prediction via Transition Functions on
Dynamic Disease Graphs}, author={Lu, Chang and Han, Tian and Ning, Yue}, booktitle={AAAI}, year={2022}}"""

_INPUTS = """predictions: float probabilities of heart failure, in [0, 1]. references: int labels, 1 = heart failure.
threshold (optional, default 0.5). Returns {"auc": float, "pr_auc": float, "f1": float, "f1_at_0.5": float}."""


class EHRHeartFailure(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Value("float64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, threshold: float = 0.5):
        return heart_failure_metrics(torch.tensor(predictions, dtype=torch.float64),
                                     torch.tensor(references, dtype=torch.long), threshold=threshold)
