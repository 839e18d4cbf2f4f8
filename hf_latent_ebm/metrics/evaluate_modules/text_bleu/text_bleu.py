"""Corpus BLEU as a local `evaluate` module: evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("text_bleu"))."""

import datasets
import evaluate

from hf_latent_ebm.metrics.text import corpus_bleu

_DESCRIPTION = """Corpus BLEU-4 (clipped n-gram precisions and brevity penalty, no smoothing), one reference per
prediction, texts split on whitespace; used for the reconstruction BLEU of the latent-EBM text models."""

_CITATION = """@inproceedings{papineni2002bleu, title={BLEU: a Method for Automatic Evaluation of Machine
Translation}, author={Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing}, booktitle={ACL},
year={2002}}"""

_INPUTS = """predictions: list of str. references: list of str. Returns {"bleu": float in [0, 1]}."""


class TextBLEU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Value("string"),
                                                               "references": datasets.Value("string")}))

    def _compute(self, predictions, references, max_order: int = 4):
        return {"bleu": corpus_bleu([r.split() for r in references], [p.split() for p in predictions], max_order)}
