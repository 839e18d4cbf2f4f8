"""Reconstruction MSE as a local `evaluate` module:
evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("reconstruction_mse"))."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Mean squared error per pixel between reconstructions (predictions) and the original images
(references), both (C, H, W) arrays on the [-1, 1] scale; the MSE column of Pang et al. 2020, Table 1."""

_CITATION = """@inproceedings{pang2020learning, title={Learning Latent Space Energy-Based Prior Model},
author={Pang, Bo and Han, Tian and Nijkamp, Erik and Zhu, Song-Chun and Wu, Ying Nian}, booktitle={NeurIPS},
year={2020}}"""

_INPUTS = """predictions: reconstructed images. references: original images, same shapes. Returns {"mse": float}."""

_IMAGE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


class ReconstructionMSE(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": _IMAGE, "references": _IMAGE}))

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
        if predictions.shape != references.shape:
            raise ValueError(f"shapes differ: {predictions.shape} vs {references.shape}")
        return {"mse": float(((predictions - references) ** 2).mean())}
