"""Active units as a local `evaluate` module: evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("active_units"))."""

import datasets
import evaluate
import torch

from hf_latent_ebm.metrics.text import active_units

_DESCRIPTION = """Number of latent dimensions whose posterior mean varies across the data, Cov_x(E[z | x]) > threshold
(Burda et al. 2016): predictions are the posterior means E[z | x], one vector per example."""

_CITATION = """@inproceedings{burda2016importance, title={Importance Weighted Autoencoders}, author={Burda, Yuri and
Grosse, Roger and Salakhutdinov, Ruslan}, booktitle={ICLR}, year={2016}}"""

_INPUTS = """predictions: list of float vectors (posterior means). Returns {"active_units": int}."""


class ActiveUnits(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32"))}))

    def _compute(self, predictions, threshold: float = 0.01):
        return {"active_units": active_units(torch.tensor(predictions), threshold)}
