"""The MOSES molecule metrics as a local `evaluate` module:
evaluate.load(hf_latent_ebm.metrics.evaluate_module_path("moses"))."""

import datasets
import evaluate

from hf_latent_ebm.metrics.molecules import molecule_metrics

_DESCRIPTION = """The MOSES distribution metrics of generated molecules (Polykovskiy et al. 2020) on RDKit canonical
SMILES: validity, unique@k, novelty against the training set, internal diversity (IntDiv1, IntDiv2) and, when asked,
the Frechet ChemNet Distance (fcd=True) and nearest-neighbour, fragment and scaffold similarity (similarities=True)
against reference_smiles, or the MOSES test set when none are given. Predictions are the generated SMILES
(invalid ones count against validity and are dropped elsewhere); references are the training SMILES, a set of
any size, given to compute() (not add_batch) since it need not match the generated set row for row."""

_CITATION = """@article{polykovskiy2020molecular, title={Molecular Sets (MOSES): A Benchmarking Platform for Molecular
Generation Models}, author={Polykovskiy, Daniil and Zhebrak, Alexander and Sanchez-Lengeling, Benjamin and others},
journal={Frontiers in Pharmacology}, year={2020}}"""

_INPUTS = """predictions: list of str, the generated SMILES. references: list of str, the training SMILES (for
novelty). Optional: ks (unique@k sizes, default (1000, 10000)), reference_smiles (list of str, default the MOSES test
set), fcd (bool), similarities (bool), device (for ChemNet). Returns {"validity", "unique@k" for each k reached,
"novelty", "intdiv1", "intdiv2"} plus "fcd" and "snn", "frag", "scaf" when asked."""


class Moses(evaluate.Metric):
    def _info(self):
        # Only the generated SMILES are rows; the training set is a compute() argument (see compute).
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS,
                                   features=datasets.Features({"predictions": datasets.Value("string")}))

    def compute(self, *, predictions=None, references=None, **kwargs):
        """The metrics of `predictions` (generated SMILES) with `references` (training SMILES) for novelty."""
        # evaluate would want one reference per prediction row, and drops inputs that are not features without a word:
        # hand the training set to _compute under its own name instead.
        if references is None:
            raise ValueError("references must be the training SMILES (novelty is measured against them)")
        if isinstance(references, str):
            raise TypeError("references must be a list of training SMILES, not one string")
        return super().compute(predictions=predictions, training_smiles=list(references), **kwargs)

    def _compute(self, predictions, training_smiles, ks=(1000, 10000), reference_smiles=None, fcd=False,
                 similarities=False, device="cpu"):
        return molecule_metrics(predictions, training_smiles, ks=tuple(ks), reference_smiles=reference_smiles,
                                fcd=fcd, similarities=similarities, device=device)
