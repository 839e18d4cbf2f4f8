"""Occlusion attributions of Chet predictions (`hf_latent_ebm.chet.explain`) and the ICD-9 names, on tiny untrained
models of a small synthetic cohort."""

import datasets
import pytest
import torch

from hf_latent_ebm.chet import ChetForHealthEventPrediction, prepare_cohort, synthesize_mimic3
from hf_latent_ebm.chet.explain import code_attributions, graph_weight, occlusion_scores
from hf_latent_ebm.chet.icd9_names import ICD9_NAMES, icd9_name
from hf_latent_ebm.chet.synthetic import DISEASE_CLUSTERS
from hf_latent_ebm.data.ehr import load_mimic3
from hf_latent_ebm.data.icd9 import dot_icd9

SMALL = dict(code_embedding_dim=8, graph_dim=8, hidden_dim=12, transition_attention_dim=8, visit_attention_dim=8)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    records, _ = load_mimic3(synthesize_mimic3(tmp_path_factory.mktemp("ehr"), num_patients=200, seed=0))
    prepared = prepare_cohort(records, seed=0)
    torch.manual_seed(0)
    return {task: ChetForHealthEventPrediction.from_cohort(prepared["vocabulary"], prepared["graph"], task=task,
                                                           **SMALL).eval()
            for task in ("diagnosis", "heart_failure")}


@pytest.fixture(scope="module")
def visits(models):
    # Three visits of codes linked in the graph (a cardiac patient), one code in two visits.
    names = models["diagnosis"].config.code_names
    cardiac = [code for code in ("428.0", "427.31", "401.9", "414.01", "584.9") if code in names]
    assert len(cardiac) == 5
    return [cardiac[:3], cardiac[2:4], [cardiac[4]]]


def score(model, visits, code=None):
    scores, _ = model.predict(datasets.Dataset.from_dict({"patient_id": [0], "visits": [visits]}))
    return float(scores[0] if code is None else scores[0, model.config.code_names.index(code)])


def test_removing_an_absent_code_changes_nothing(models, visits):
    model = models["diagnosis"]
    full, absent, unknown = occlusion_scores(model, visits, [set(), {"250.00"}, {"not a code"}], "584.9")
    assert full == pytest.approx(absent, abs=1e-6) and full == pytest.approx(unknown, abs=1e-6)
    assert full == pytest.approx(score(model, visits, "584.9"), abs=1e-6)
    # Removing every code leaves nothing to score.
    assert occlusion_scores(model, visits, [{code for visit in visits for code in visit}], "584.9") == [None]


def test_diagnosis_attributions_are_score_drops_with_graph_weights(models, visits):
    model = models["diagnosis"]
    target = "427.31"
    rows = code_attributions(model, visits, target)
    distinct = list(dict.fromkeys(code for visit in visits for code in visit))
    assert sorted(row.code for row in rows) == sorted(distinct)  # one row per distinct input code
    drops = [row.score_drop for row in rows]
    assert drops == sorted(drops, reverse=True)
    full = score(model, visits, target)
    adjacency = model.graph.dense()
    names = model.config.code_names
    for row in rows:
        assert row.visits == [index for index, visit in enumerate(visits) if row.code in visit]
        # The drop is the score without the code, from every visit (the last visit, 584.9 alone, disappears).
        without = [kept for visit in visits if (kept := [code for code in visit if code != row.code])]
        assert row.score_drop == pytest.approx(full - score(model, without, target), abs=1e-6)
        source, sink = names.index(row.code), names.index(target)
        assert row.weight_to_target == pytest.approx(float(adjacency[source, sink]))
        assert row.weight_from_target == pytest.approx(float(adjacency[sink, source]))
        assert row.is_neighbour == bool(adjacency[source, sink] or adjacency[sink, source])
    assert any(row.is_neighbour for row in rows)  # cardiac codes co-occur in the cohort
    assert [(row.code, row.score_drop) for row in rows] == [
        (row.code, row.score_drop) for row in code_attributions(model, visits, target)]  # deterministic


def test_heart_failure_attributions_and_edge_cases(models, visits):
    model = models["heart_failure"]
    rows = code_attributions(model, visits)
    assert len(rows) == 5 and all(row.weight_to_target is None and not row.is_neighbour for row in rows)
    assert all(isinstance(row.score_drop, float) for row in rows)
    # A patient with a single code: nothing is left without it.
    (only,) = code_attributions(model, [["428.0"], ["428.0"]])
    assert only.code == "428.0" and only.visits == [0, 1] and only.score_drop is None
    with pytest.raises(ValueError, match="pass code=None"):
        code_attributions(model, visits, "428.0")
    with pytest.raises(ValueError, match="not a code of the model's vocabulary"):
        code_attributions(models["diagnosis"], visits, None)
    with pytest.raises(ValueError, match="outside the model's vocabulary: V70.0"):
        code_attributions(model, [["428.0", "V70.0"]])
    with pytest.raises(ValueError, match="every visit at least one code"):
        code_attributions(model, [["428.0"], []])


def test_graph_weight_reads_the_sparse_graph(models):
    model = models["diagnosis"]
    adjacency = model.graph.dense()
    names = model.config.code_names
    for source, target in [(0, 1), (5, 7), (names.index("428.0"), names.index("427.31"))]:
        assert graph_weight(model, names[source], names[target]) == pytest.approx(float(adjacency[source, target]))


def test_every_generator_code_has_a_name():
    codes = {dot_icd9(code) for cluster in DISEASE_CLUSTERS.values() for code in cluster}
    assert codes <= set(ICD9_NAMES) and len(codes) == 254
    assert icd9_name("428.0") == "Congestive heart failure, unspecified"
    assert icd9_name("V70.0") == "supplementary factors (V codes) (no name bundled)"
    assert icd9_name("nonsense") == "unknown code"
