"""Checkpoint selection on a validation split of the labelled rows, and class priors under label shift."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
from hf_latent_ebm.class_priors import estimate_class_priors, shift_to_priors
from hf_latent_ebm.data import UNLABELLED, few_label_split, validation_split
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .test_semi_supervised import TINY, fitted, toy_table


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return LatentEBMForSemiSupervisedClassification(
        LatentEBMClassificationConfig.for_table(fitted(), hidden_dim=8, **TINY))


def split_data():
    features, labels = fitted().transform(toy_table(120))
    train_labels, held_out = validation_split(few_label_split(labels, 10, seed=0), 0.2, seed=0)
    return {"features": features, "labels": train_labels}, {"features": features[held_out], "labels": labels[held_out]}


def arguments(output_dir, max_steps):
    return TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, batch_size=16, seed=1, sample_every=0,
                             checkpoint_every=2, log_every=1, eval_every=2, labelled_batch_size=4)


def test_validation_split_is_seeded_stratified_and_keeps_inputs_unlabelled():
    labels = torch.tensor([0] * 10 + [1] * 10 + [UNLABELLED] * 5)
    train, held_out = validation_split(labels, 0.2, seed=3)
    assert held_out.sum() == 4 and bool((labels[held_out] == 0).sum() == 2)
    assert bool((train[held_out] == UNLABELLED).all()) and torch.equal(train[~held_out], labels[~held_out])
    assert torch.equal(validation_split(labels, 0.2, seed=3)[1], held_out)
    assert not torch.equal(validation_split(labels, 0.2, seed=4)[1], held_out)
    with pytest.raises(ValueError, match="at least 2 per class"):
        validation_split(torch.tensor([0, 1, 1]), 0.5)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        validation_split(labels, 1.0)


def test_the_best_validation_checkpoint_is_the_saved_model_and_resumes_exactly(tmp_path):
    train, validation = split_data()
    trainer = LatentEBMTrainer(tiny_model(), train, arguments(tmp_path / "straight", 8), eval_data=validation)
    final = trainer.train()
    history = json.loads((tmp_path / "straight" / "validation_history.json").read_text())
    assert [record["step"] for record in history] == [2, 4, 6, 8]
    best = max(reversed(history), key=lambda r: r["validation_accuracy"])  # the latest of equals
    assert final["selected_step"] == best["step"]
    assert final["selected_validation_accuracy"] == best["validation_accuracy"]
    # The saved model scores what the selected evaluation scored.
    loaded = AutoModel.from_pretrained(tmp_path / "straight").eval()
    batches = [{"features": validation["features"], "labels": validation["labels"]}]
    assert loaded.validation_metrics(batches, torch.Generator().manual_seed(3))["log_loss"] == pytest.approx(
        best["validation_log_loss"], rel=1e-5)
    # Stopped after step 3 and resumed: the same evaluations, the same selection, the same saved weights.
    split = LatentEBMTrainer(tiny_model(), train, arguments(tmp_path / "split", 8), eval_data=validation)
    split.train(should_stop=lambda step: step == 5)
    resumed = LatentEBMTrainer(tiny_model(seed=9), train, arguments(tmp_path / "split", 8), eval_data=validation)
    assert resumed.train(resume=True)["selected_step"] == final["selected_step"]
    assert resumed.eval_history == trainer.eval_history
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_validation_data_must_be_labelled(tmp_path):
    train, validation = split_data()
    unlabelled = {"features": validation["features"], "labels": torch.full_like(validation["labels"], UNLABELLED)}
    with pytest.raises(ValueError, match="labelled rows only"):
        LatentEBMTrainer(tiny_model(), train, arguments(tmp_path, 2), eval_data=unlabelled)
    with pytest.raises(ValueError, match="labels column"):
        LatentEBMTrainer(tiny_model(), train, arguments(tmp_path, 2), eval_data={"features": validation["features"]})


def bayes_posteriors(population_priors, rows=20000, seed=0):
    """Two unit Gaussians 1.5 apart drawn with `population_priors`, and the posteriors of the Bayes classifier
    that assumes equal priors (as one trained on balanced labels does)."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand(rows, generator=generator) < population_priors[1]).long()
    x = torch.randn(rows, generator=generator) + 1.5 * labels
    return torch.softmax(torch.stack([-x**2 / 2, -(x - 1.5)**2 / 2], dim=1), dim=1), labels


def test_em_recovers_the_population_class_priors_and_fixes_the_decision():
    probabilities, labels = bayes_posteriors([0.86, 0.14])
    priors = estimate_class_priors(probabilities, [0.5, 0.5])
    assert abs(float(priors[1]) - 0.14) < 0.01
    shifted = shift_to_priors(probabilities, [0.5, 0.5], priors)
    torch.testing.assert_close(shifted.sum(dim=1), torch.ones(len(shifted), dtype=shifted.dtype))
    # Accuracy rises, the ranking of the minority class (what AUPRC reads) does not change.
    assert (shifted.argmax(1) == labels).float().mean() > (probabilities.argmax(1) == labels).float().mean() + 0.1
    order = probabilities[:, 1].argsort()
    assert bool((shifted[order, 1].diff() >= -1e-6).all())  # monotone in p(minority | x): float ties aside
    balanced, _ = bayes_posteriors([0.5, 0.5])
    assert abs(float(estimate_class_priors(balanced, [0.5, 0.5])[1]) - 0.5) < 0.02
    with pytest.raises(ValueError, match="summing to 1"):
        shift_to_priors(probabilities, [0.5, 0.6], priors)


def test_fitted_class_priors_are_saved_and_used_by_predict(tmp_path):
    model = tiny_model().eval()
    frame = toy_table(60)
    rows = frame.drop(columns="kind").iloc[np.random.default_rng(0).permutation(60)]  # not in any sorted order
    plain = model.predict_proba(rows)
    priors = model.fit_class_priors(rows, [5, 5], min_prior=0.0)  # what is saved and reused, not the estimate
    assert model.config.training_class_priors == [0.5, 0.5] and len(priors) == 2
    expected = shift_to_priors(plain, [0.5, 0.5], priors).float()
    torch.testing.assert_close(model.predict_proba(rows), expected)
    torch.testing.assert_close(model.predict_proba(rows, use_class_priors=False), plain)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.class_priors == pytest.approx(priors)
    torch.testing.assert_close(loaded.predict_proba(rows), expected)
    with pytest.raises(ValueError, match="training_class_priors must be 2 positive"):
        model.fit_class_priors(rows, [1, 0])
    with pytest.raises(ValueError, match="set together"):
        LatentEBMClassificationConfig.for_table(fitted(), class_priors=[0.5, 0.5])


def test_only_the_validation_set_selects(tmp_path):
    train, validation = split_data()
    trainer = LatentEBMTrainer(tiny_model(), train, arguments(tmp_path, 4), eval_data={"test_curve": validation})
    final = trainer.train()
    assert "selected_step" not in final and trainer.best is None
    assert [set(record) for record in trainer.eval_history] == [{"step", "test_curve_accuracy",
                                                                  "test_curve_log_loss"}] * 2
    for name, value in trainer.model.state_dict().items():  # the last step's model, not a selected one
        torch.testing.assert_close(value, AutoModel.from_pretrained(tmp_path).state_dict()[name])


def test_a_degenerate_class_prior_estimate_is_refused_and_changes_nothing():
    model = tiny_model().eval()
    rows = toy_table(60).drop(columns="kind")
    # An untrained model's near-uniform, slightly tilted probabilities: EM drives a class to zero.
    with pytest.raises(ValueError, match=r"drove the prior of \{'yes'.*would never be predicted"):
        model.fit_class_priors(rows, [1, 1])
    assert model.config.class_priors is None and model.config.training_class_priors is None
