"""Chet: the cohort (split, graph, neighbours, roles), the batched model against the per-patient reference loop,
training with best-epoch selection, checkpoints, save/load, cards, prediction, baselines and the `ehr` CLI."""

import csv
import json

import datasets
import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_latent_ebm.chet import (ChetConfig, ChetForHealthEventPrediction, CooccurrenceGraph, PackedCohort,
                                encode_patients, prepare_cohort, split_patients, synthesize_mimic3)
from hf_latent_ebm.chet.baselines import BASELINES, LastVisitBaseline
from hf_latent_ebm.chet.cohort import EMERGING_NEIGHBOUR, EMERGING_UNRELATED, PERSISTENT
from hf_latent_ebm.chet.reference import dense_patient, reference_logits
from hf_latent_ebm.chet.training import (EHRTrainer, EHRTrainingArguments, predict_scores, run_experiment,
                                         score_predictor)
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.data.ehr import load_ehr, load_mimic3
from hf_latent_ebm.metrics.ehr import binary_f1, f1_optimal_threshold

from .test_hub import FakeHfApi

SMALL = dict(code_embedding_dim=8, graph_dim=8, hidden_dim=12, transition_attention_dim=8, visit_attention_dim=8)


def patients(visits_per_patient):
    return datasets.Dataset.from_dict({"patient_id": list(range(len(visits_per_patient))),
                                       "visits": visits_per_patient})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = synthesize_mimic3(tmp_path_factory.mktemp("mimic3"), num_patients=240, seed=0)
    records, _ = load_mimic3(folder)
    return records, prepare_cohort(records, seed=0)


def test_graph_counts_prunes_and_normalises():
    # Visits {0,1}, {0,1}, {0,2}: row 0 counts 1 twice and 2 once; rows are normalised.
    graph = CooccurrenceGraph.fit(torch.tensor([0, 2, 4, 6]), torch.tensor([0, 1, 0, 1, 0, 2]), 3)
    dense = graph.dense()
    assert torch.allclose(dense[0], torch.tensor([0, 2 / 3, 1 / 3]))
    assert torch.allclose(dense[1], torch.tensor([1.0, 0, 0])) and torch.allclose(dense[2], torch.tensor([1.0, 0, 0]))
    # The pruning rule: a weight < 0.01 is dropped only in a row counting more than 100.
    many = 200
    offsets = torch.arange(0, 2 * (many + 1) + 1, 2)
    codes = torch.tensor([0, 1] * many + [0, 2])
    pruned = CooccurrenceGraph.fit(offsets, codes, 3).dense()
    assert pruned[0, 2] == 0 and pruned[0, 1] == 1 and pruned[2, 0] == 1  # row 2 counts 1: kept


def test_neighbours_and_roles_follow_the_definitions():
    graph = CooccurrenceGraph.fit(torch.tensor([0, 2, 4]), torch.tensor([0, 1, 2, 3]), 5)  # edges 0-1, 2-3
    records = patients([[["a"], ["a", "c"], ["b", "d", "e"], ["x"]]])
    encoded, unknown = encode_patients(records, ["a", "b", "c", "d", "e"], graph)
    row = encoded[0]
    assert row["codes"] == [[0], [0, 2], [1, 3, 4]]
    # Visit 1 = {a, c}: a persists; c is unrelated (a's neighbour is b). Visit 2 = {b, d, e}: b is a neighbour of a,
    # d a neighbour of c, e unrelated.
    assert row["roles"] == [[PERSISTENT], [PERSISTENT, EMERGING_UNRELATED],
                            [EMERGING_NEIGHBOUR, EMERGING_NEIGHBOUR, EMERGING_UNRELATED]]
    assert row["neighbours"] == [[1], [1, 3], [0, 2]]
    assert row["target_codes"] == [] and unknown == 0  # "x" is outside the vocabulary: an empty target
    assert row["heart_failure"] == 0
    with pytest.raises(ValueError, match="no code of the model's vocabulary"):
        encode_patients(patients([[["x"], ["a"]]]), ["a"], graph)


def test_split_puts_every_code_in_train_and_is_seeded(prepared):
    records, _ = prepared
    splits = split_patients(records, seed=3)
    train_codes = {code for visits in splits["train"]["visits"] for visit in visits for code in visit}
    all_codes = {code for visits in records["visits"] for visit in visits for code in visit}
    assert train_codes == all_codes
    ids = [set(splits[name]["patient_id"]) for name in ("train", "validation", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == len(records)
    assert split_patients(records, seed=3)["test"]["patient_id"] == splits["test"]["patient_id"]
    with pytest.raises(ValueError, match="fractions"):
        split_patients(records, (0.5, 0.5, 0.0))


@pytest.mark.parametrize("task", ["diagnosis", "heart_failure"])
def test_batched_model_matches_the_per_patient_loop(prepared, task):
    _, data = prepared
    torch.manual_seed(1)
    model = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], task=task, **SMALL).eval()
    cohort = PackedCohort(data["train"], len(data["vocabulary"]))
    ids = torch.arange(20)
    batched = model(**cohort.batch(ids)).logits
    looped = reference_logits(model, [dense_patient(cohort, int(i)) for i in ids])
    assert batched.shape == ((20, len(data["vocabulary"])) if task == "diagnosis" else (20,))
    assert torch.allclose(batched, looped, atol=1e-5)
    # A patient's prediction does not depend on the others in its batch.
    assert torch.allclose(model(**cohort.batch(ids[[7, 3]])).logits, batched[[7, 3]], atol=1e-5)


def test_storage_is_ragged(prepared):
    _, data = prepared
    cohort = PackedCohort(data["train"], len(data["vocabulary"]))
    occurrences = int(cohort.code_offsets[-1])
    assert cohort.codes.shape == (occurrences,) and cohort.roles.shape == (occurrences,)
    assert data["train"].features["codes"].feature.feature.dtype == "int32"


def test_training_lowers_the_loss_keeps_the_best_epoch_and_resumes(prepared, tmp_path):
    _, data = prepared
    num_codes = len(data["vocabulary"])
    train, valid = (PackedCohort(data[name], num_codes) for name in ("train", "validation"))
    torch.manual_seed(0)
    model = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], **SMALL)
    args = EHRTrainingArguments(output_dir=str(tmp_path / "run"), max_epochs=3, batch_size=16)
    summary = EHRTrainer(model, train, valid, "diagnosis", args, model.config.learning_rate_at).train(progress=False)
    losses = [record["train_loss"] for record in summary["history"]]
    assert losses[-1] < losses[0]
    best = max(summary["history"], key=lambda record: record["validation_weighted_f1"])
    assert summary["best_epoch"] == best["epoch"]
    assert score_predictor(model, valid, "diagnosis")["weighted_f1"] == pytest.approx(best["validation_weighted_f1"])
    for name in ("training_curves.png", "training_history.json", "config.json", "model.safetensors", "README.md"):
        assert (tmp_path / "run" / name).exists()
    # Resuming the finished run's checkpoint for two more epochs equals running five at once.
    torch.manual_seed(0)
    fresh = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], **SMALL)
    straight = EHRTrainer(fresh, train, valid, "diagnosis", EHRTrainingArguments(str(tmp_path / "b"), max_epochs=5,
                                                                                 batch_size=16),
                          fresh.config.learning_rate_at).train(progress=False)
    resumed_model = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], **SMALL)
    args.max_epochs = 5
    resumed = EHRTrainer(resumed_model, train, valid, "diagnosis", args,
                         resumed_model.config.learning_rate_at).train(resume=True, progress=False)
    assert [r["train_loss"] for r in resumed["history"]] == pytest.approx([r["train_loss"] for r in
                                                                          straight["history"]])


def test_save_load_card_push_and_predict(prepared, tmp_path):
    records, data = prepared
    model = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], task="heart_failure",
                                                     **SMALL).eval()
    model.save_pretrained(tmp_path / "saved")
    loaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    assert isinstance(loaded, ChetForHealthEventPrediction)
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "saved"), ChetConfig)
    assert torch.equal(loaded.graph_keys, model.graph_keys)
    scores, unknown = model.predict(records.select(range(10)))
    again, _ = loaded.predict(records.select(range(10)))
    assert scores.shape == (10,) and torch.allclose(scores, again) and ((0 <= scores) & (scores <= 1)).all()
    assert unknown == 0
    card = (tmp_path / "saved" / "README.md").read_text()
    assert "heart failure" in card and "ehr predict" in card
    assert "health-event-prediction" in card and "langevin" not in card
    api = FakeHfApi()
    model.push_to_hub("org/chet", api=api)
    assert "model.safetensors" in api.calls[1][1]["files"]


def test_heart_failure_threshold_is_chosen_on_validation_stored_and_used_by_predict(prepared, tmp_path):
    records, data = prepared
    num_codes = len(data["vocabulary"])
    train, valid = (PackedCohort(data[name], num_codes) for name in ("train", "validation"))
    torch.manual_seed(0)
    model = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], task="heart_failure", **SMALL)
    assert model.decision_threshold == 0.5 and model.config.decision_threshold is None  # none chosen yet
    args = EHRTrainingArguments(output_dir=str(tmp_path / "run"), max_epochs=2, batch_size=16)
    summary = EHRTrainer(model, train, valid, "heart_failure", args, model.config.learning_rate_at).train(
        progress=False)
    # F1-optimal on the validation scores of the selected epoch's weights, which the model ends with.
    scores = predict_scores(model, valid)
    labels = valid.labels_for(torch.arange(len(valid)), "heart_failure")
    threshold = f1_optimal_threshold(scores, labels)
    assert summary["decision_threshold"] == threshold == model.config.decision_threshold == model.decision_threshold
    assert summary["validation"]["f1"] == binary_f1(scores, labels, threshold) >= summary["validation"]["f1_at_0.5"]
    assert summary["validation"]["auc"] == max(record["validation_auc"] for record in summary["history"])
    # Stored in config.json and reloaded exactly.
    assert json.loads((tmp_path / "run" / "config.json").read_text())["decision_threshold"] == threshold
    loaded = AutoModel.from_pretrained(tmp_path / "run").eval()
    assert loaded.decision_threshold == threshold
    # The reloaded model decides the same for the patients in another order, at the stored threshold.
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(1)).tolist()
    probabilities, unknown, decisions = loaded.predict(records.select(order), return_decisions=True)
    reference, _, reference_decisions = model.predict(records, return_decisions=True)
    assert torch.allclose(probabilities, reference[order], atol=1e-6)
    assert torch.equal(decisions, reference_decisions[order])
    assert torch.equal(decisions, probabilities.double() > threshold) and decisions.dtype == torch.bool
    assert torch.equal(loaded.decide(probabilities), decisions)
    # Test scoring uses the stored threshold too.
    test = PackedCohort(data["test"], num_codes)
    test_labels = test.labels_for(torch.arange(len(test)), "heart_failure")
    assert score_predictor(loaded, test, "heart_failure")["f1"] == binary_f1(predict_scores(loaded, test),
                                                                            test_labels, threshold)


def test_baselines_choose_their_own_threshold_on_validation(prepared, tmp_path):
    _, data = prepared
    valid = PackedCohort(data["validation"], len(data["vocabulary"]))
    labels = valid.labels_for(torch.arange(len(valid)), "heart_failure")
    for name, epochs in (("last_visit", 1), ("logistic_regression", 2)):
        torch.manual_seed(0)
        summary = run_experiment(name, data, "heart_failure", EHRTrainingArguments(str(tmp_path / name),
                                                                                    max_epochs=epochs), progress=False)
        model = summary["model"]
        threshold = f1_optimal_threshold(predict_scores(model, valid), labels)
        assert summary["decision_threshold"] == threshold == model.decision_threshold
        assert set(summary["test"]) == {"auc", "pr_auc", "f1", "f1_at_0.5"}


def test_ehr_predict_flags_heart_failure_at_the_stored_threshold(prepared, tmp_path, capsys):
    records, data = prepared
    folder = synthesize_mimic3(tmp_path / "data", num_patients=60, seed=3)
    cli_records, _ = load_ehr(mimic3=folder, seed=0, min_visits=1)  # as `ehr predict` loads them
    torch.manual_seed(0)
    model = ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], task="heart_failure",
                                                     **SMALL).eval()
    scores, _ = model.predict(cli_records)
    ranked = scores.double().unique()
    model.decision_threshold = float((ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2)  # flags half
    model.save_pretrained(tmp_path / "model")
    cli_main(["ehr", "predict", "--model", str(tmp_path / "model"), "--mimic3", str(folder), "--output",
              str(tmp_path / "predictions.csv")])
    assert repr(model.decision_threshold) in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert list(rows[0]) == ["patient_id", "heart_failure_probability", "heart_failure_predicted"]
    assert [row["patient_id"] for row in rows] == [str(patient) for patient in cli_records["patient_id"]]
    flagged = [int(row["heart_failure_predicted"]) for row in rows]
    assert flagged == (scores.double() > model.decision_threshold).int().tolist() and 0 < sum(flagged) < len(rows)
    # The diagnosis task has no threshold.
    with pytest.raises(ValueError, match="heart_failure"):
        ChetForHealthEventPrediction.from_cohort(data["vocabulary"], data["graph"], **SMALL).predict(
            records.select(range(2)), return_decisions=True)


def test_baselines_train_and_last_visit_repeats(prepared):
    _, data = prepared
    num_codes = len(data["vocabulary"])
    train = PackedCohort(data["train"], num_codes)
    batch = train.batch(torch.arange(8), "diagnosis")
    last = LastVisitBaseline(data["vocabulary"]).fit_frequencies(train)
    logits = last(**batch).logits
    final_visit = [set(visits[-1]) for visits in data["train"].select(range(8))["codes"]]
    for row, codes in zip(logits, final_visit):
        assert set(torch.topk(row, len(codes)).indices.tolist()) == codes
    for name in ("logistic_regression", "gru", "retain"):
        model = BASELINES[name](data["vocabulary"], "diagnosis")
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        first = model(**batch).loss.item()
        for _ in range(20):
            optimizer.zero_grad()
            model(**batch).loss.backward()
            optimizer.step()
        assert model(**batch).loss.item() < first


def test_config_validation():
    with pytest.raises(ValueError, match="task"):
        ChetConfig(task="mortality")
    with pytest.raises(ValueError, match="dropout"):
        ChetConfig(dropout=1.5)
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        ChetConfig(learning_rate_schedule=[[5, 0.01]])
    assert ChetConfig(task="heart_failure").effective_dropout == 0.0 and ChetConfig().effective_dropout == 0.45
    assert ChetConfig().dropout is None  # resolved at use, not written into the config
    assert ChetConfig().learning_rate_at(25) == 0.001
    with pytest.raises(ValueError, match="decision_threshold"):
        ChetConfig(decision_threshold=0.3)  # diagnosis ranks codes
    with pytest.raises(ValueError, match="decision_threshold"):
        ChetConfig(task="heart_failure", decision_threshold=1.5)


def test_ehr_cli_synthesize_train_predict(tmp_path, capsys):
    cli_main(["ehr", "synthesize", "--patients", "150", "--out", str(tmp_path / "data")])
    assert (tmp_path / "data" / "ADMISSIONS.csv").exists()
    cli_main(["ehr", "train", "--mimic3", str(tmp_path / "data"), "--max-epochs", "2", "--output-dir",
              str(tmp_path / "run"), "--config-overrides", json.dumps({"hidden_dim": 16})])
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert results["split"] == "test" and 0 <= results["weighted_f1"] <= 1
    assert "patients kept" in capsys.readouterr().out
    assert "weighted F1" in (tmp_path / "run" / "README.md").read_text()
    cli_main(["ehr", "predict", "--model", str(tmp_path / "run"), "--mimic3", str(tmp_path / "data"), "--top-k", "5",
              "--output", str(tmp_path / "predictions.csv")])
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert rows[0].keys() == {"patient_id", "rank", "code", "score"} and len(rows) % 5 == 0
    assert [row["rank"] for row in rows[:5]] == ["1", "2", "3", "4", "5"]
    cli_main(["ehr", "train", "--synthetic", "--patients", "150", "--task", "heart_failure", "--model",
              "logistic_regression", "--max-epochs", "2", "--output-dir", str(tmp_path / "lr")])
    assert {"auc", "pr_auc", "f1", "f1_at_0.5"} <= set(json.loads((tmp_path / "lr" / "eval_results.json").read_text()))
    assert 0 <= json.loads((tmp_path / "lr" / "train_results.json").read_text())["decision_threshold"] <= 1
    for argv, message in ((["ehr", "predict", "--model", str(tmp_path / "nothing"), "--mimic3", str(tmp_path / "data")],
                           "not a saved Chet model"),
                          (["ehr", "train", "--mimic3", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "x")],
                           "ADMISSIONS")):
        with pytest.raises(SystemExit):
            cli_main(argv)
        assert message in capsys.readouterr().err


def test_gru_along_runs_is_the_gru_run_by_run():
    # Runs in no particular order, of 1 to 4 steps, some started from a state (an emerging code's), some from zero.
    from hf_latent_ebm.chet.modeling_chet import gru_along_runs

    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 7, batch_first=True)
    lengths = torch.tensor([1, 3, 1, 4, 2, 1, 3])
    started = torch.tensor([False, True, True, False, True, False, False])
    slots = torch.randperm(40)[:int(lengths.sum())]
    run_steps = torch.full((len(lengths), 4), -1)
    run_steps[torch.arange(4) < lengths.unsqueeze(1)] = slots
    run_start = torch.randperm(40)[:len(lengths)]
    inputs = torch.randn(40, 5, requires_grad=True)
    states = torch.randn(40, 7, requires_grad=True)
    steps, hidden = gru_along_runs(gru, inputs, states, run_steps, lengths, run_start, started)
    assert sorted(steps.tolist()) == sorted(slots.tolist())
    weights = torch.randn(len(steps), 7)
    batched = torch.autograd.grad((hidden * weights).sum(), [inputs, states, *gru.parameters()])
    expected = torch.zeros(40, 7)
    for run, length in enumerate(lengths.tolist()):
        start = states[run_start[run]] if started[run] else torch.zeros(7)
        output, _ = gru(inputs[run_steps[run, :length]].unsqueeze(0), start.view(1, 1, 7))
        expected = expected.index_put((run_steps[run, :length],), output[0])
    order = torch.argsort(steps)
    assert torch.allclose(hidden[order], expected[steps[order]], atol=1e-6)
    projected = torch.zeros(40, 7).index_put((steps,), weights)
    looped = torch.autograd.grad((expected * projected).sum(), [inputs, states, *gru.parameters()])
    for a, b in zip(batched, looped):
        assert torch.allclose(a, b, atol=1e-5)
