"""Cross-modal coherence as a local `evaluate` module:
evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("coherence")) for joint coherence, and with
config_name="cross" for cross coherence (predictions scored against references)."""

import datasets
import evaluate
import torch

from hf_latent_ebm.metrics.coherence import joint_agreement

_DESCRIPTION = """Coherence of multimodal generations from per-modality classifier labels (Shi et al. 2019; Sutter et
al. 2021). Each prediction row holds the labels the modality classifiers gave one sample, one per modality.
The default ("joint") configuration scores the fraction of rows whose labels all agree (joint coherence). The "cross"
configuration also takes references, the true label of each row's conditioning example, and counts a row only if
every label equals its reference (cross coherence; one-label rows give plain accuracy)."""

_CITATION = """@inproceedings{shi2019variational, title={Variational Mixture-of-Experts Autoencoders for Multi-Modal
Deep Generative Models}, author={Shi, Yuge and Siddharth, N. and Paige, Brooks and Torr, Philip H. S.},
booktitle={NeurIPS}, year={2019}}"""

_INPUTS = """predictions: list of int lists, one row per sample with one predicted label per modality (all rows the
same length). references ("cross" configuration only): int true labels, one per row.
Returns {"coherence": float in [0, 1]}."""

_ROW = datasets.Sequence(datasets.Value("int64"))
_CONFIGS = {"default": "joint", "joint": "joint", "cross": "cross"}


class Coherence(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS:
            raise ValueError(f"unknown coherence configuration {self.config_name!r}: use 'joint' (the default) or "
                             "'cross'")
        features = {"predictions": _ROW}
        if _CONFIGS[self.config_name] == "cross":
            features["references"] = datasets.Value("int64")
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features(features))

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Coherence of the rows of `predictions` (and, in the "cross" configuration, against `references`).
"""
        # evaluate drops inputs that are not features without a word; refuse rather than score joint coherence.
        if references is not None and _CONFIGS[self.config_name] == "joint":
            raise ValueError("references are scored by the 'cross' configuration: "
                             "evaluate.load(path, config_name='cross')")
        if references is None and predictions is not None and _CONFIGS[self.config_name] == "cross":
            raise ValueError("the 'cross' configuration needs references, the true label of each row")
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references=None):
        lengths = {len(row) for row in predictions}
        if len(lengths) > 1:
            raise ValueError(f"every prediction row needs one label per modality, got row lengths {sorted(lengths)}")
        references = None if references is None else torch.tensor(references, dtype=torch.long)
        return {"coherence": joint_agreement(torch.tensor(predictions, dtype=torch.long), references)}
