"""AUPRC for anomaly detection as a local `evaluate` module:
evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("anomaly_auprc"))."""

import datasets
import evaluate
import torch

from hf_latent_ebm.metrics.anomaly import auprc

_DESCRIPTION = """Area under the precision-recall curve (average precision) with anomalies as the positive class, as
in the MNIST held-out-digit protocol of Pang et al. 2020 (Table 3). predictions are anomaly scores (higher = more
anomalous), references are 1 for an anomaly and 0 otherwise."""

_CITATION = """@inproceedings{pang2020learning, title={Learning Latent Space Energy-Based Prior Model},
author={Pang, Bo and Han, Tian and Nijkamp, Erik and Zhu, Song-Chun and Wu, Ying Nian}, booktitle={NeurIPS},
year={2020}}"""

_INPUTS = """predictions: float anomaly scores. references: int labels, 1 = anomaly. Returns {"auprc": float}."""


class AnomalyAUPRC(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Value("float64"),
                                                               "references": datasets.Value("int64")}))

    def _compute(self, predictions, references):
        return {"auprc": auprc(torch.tensor(predictions), torch.tensor(references))}
