"""Chet's last-visit code read-out (`ChetConfig.code_readout`): where its scores go, that it lets Chet learn
"the last visit repeats" when the codes outnumber the hidden units (the paper's model does not), and that
checkpoints saved before it existed load as the paper's model."""

import json

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm.chet import ChetForHealthEventPrediction, PackedCohort, prepare_cohort
from hf_latent_ebm.chet.training import EHRTrainingArguments, run_experiment

SMALL = dict(code_embedding_dim=8, graph_dim=8, hidden_dim=8, transition_attention_dim=8, visit_attention_dim=8)


def repeating_cohort(num_patients=300, num_codes=40, seed=0):
    """Every visit of a patient is the same 2-4 codes, so the next visit is the last one again."""
    rng = np.random.default_rng(seed)
    names = [f"{100 + index}.{index % 10}" for index in range(num_codes)]
    visits = []
    for _ in range(num_patients):
        codes = sorted(rng.choice(num_codes, size=int(rng.integers(2, 5)), replace=False).tolist())
        visits.append([[names[code] for code in codes]] * int(rng.integers(2, 5)))
    return datasets.Dataset.from_dict({"patient_id": list(range(num_patients)), "visits": visits})


@pytest.fixture(scope="module")
def repeating():
    return prepare_cohort(repeating_cohort(), seed=0)


def test_readout_scores_exactly_the_last_visits_codes(repeating):
    vocabulary = repeating["vocabulary"]
    model = ChetForHealthEventPrediction.from_cohort(vocabulary, repeating["graph"], **SMALL).eval()
    cohort = PackedCohort(repeating["test"], len(vocabulary))
    # Make the classifier silent and the read-out a constant 5: the logits are 5 at each last-visit code, else 0.
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.code_readout.weight.zero_()
        model.code_readout.bias.fill_(5.0)
    patients = torch.arange(len(cohort))
    logits = model(**cohort.batch(patients)).logits
    expected = torch.zeros_like(logits)
    for row, visits in enumerate(repeating["test"]["codes"]):
        expected[row, visits[-1]] = 5.0
    assert torch.equal(logits, expected)


def test_heart_failure_and_the_papers_model_have_no_readout(repeating):
    vocabulary, graph = repeating["vocabulary"], repeating["graph"]
    assert ChetForHealthEventPrediction.from_cohort(vocabulary, graph, task="heart_failure").code_readout is None
    assert ChetForHealthEventPrediction.from_cohort(vocabulary, graph, code_readout=False).code_readout is None


def test_readout_learns_to_repeat_where_the_papers_model_cannot(repeating, tmp_path):
    # 40 codes, 8 hidden units: the pooled patient vector cannot name every code, the read-out can.
    scores = {}
    for readout in (True, False):
        args = EHRTrainingArguments(output_dir=str(tmp_path / str(readout)), max_epochs=2, seed=0)
        summary = run_experiment("chet", repeating, "diagnosis", args, {**SMALL, "code_readout": readout},
                                 progress=False)
        scores[readout] = summary["test"]["weighted_f1"]
    assert scores[True] > 0.95
    assert scores[True] > scores[False] + 0.3


def test_checkpoint_without_the_field_loads_as_the_papers_model(repeating, tmp_path):
    vocabulary = repeating["vocabulary"]
    model = ChetForHealthEventPrediction.from_cohort(vocabulary, repeating["graph"], code_readout=False,
                                                     **SMALL).eval()
    model.save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["code_readout"]  # as written before the field existed
    config_path.write_text(json.dumps(saved))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.code_readout is False and loaded.code_readout is None
    cohort = PackedCohort(repeating["test"], len(vocabulary))
    batch = cohort.batch(torch.arange(len(cohort)))
    assert torch.equal(loaded(**batch).logits, model(**batch).logits)
