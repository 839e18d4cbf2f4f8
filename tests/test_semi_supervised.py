"""Semi-supervised classification by symbol-vector coupling: the prior, the learners, the model over images, tables
and token ids, tabular preprocessing, few-label splits, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.data import UNLABELLED, TabularPreprocessor, few_label_split, load_tabular_dataset
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .testing_utils import ModelTesterMixin

TINY = dict(latent_dim=4, energy_hidden_dim=8, sampler_config={"prior_steps": 4, "posterior_steps": 4})


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def toy_table(rows=120, seed=0, unlabelled_every=None):
    """Two classes apart in two numeric columns, a categorical column that leans with the class."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    frame = pd.DataFrame({"height": rng.normal(2.0 * label, 0.6), "weight": rng.normal(50 + 10 * label, 3.0),
                          "colour": np.where(rng.random(rows) < 0.8, np.where(label == 1, "red", "blue"), "green"),
                          "kind": np.where(label == 1, "yes", "no")})
    if unlabelled_every:
        frame.loc[::unlabelled_every, "kind"] = None
    return frame


def fitted(frame=None):
    return TabularPreprocessor.fit(toy_table() if frame is None else frame, "kind")


class SemiSupervisedTester(ModelTesterMixin):
    model_class = LatentEBMForSemiSupervisedClassification
    config_class = LatentEBMClassificationConfig
    input_name = "features"
    bad_config_overrides = [{"num_labels": 1}, {"prior_type": "ebm"}, {"label_loss_weight": -1.0},
                            {"learner": "nope"}, {"vae_free_bits": -1.0}]

    def labels(self, batch_size):
        return torch.tensor([0, UNLABELLED, 1, UNLABELLED, 0, 1][:batch_size])

    def get_inputs(self, batch_size=3, seed=0):
        return {self.input_name: self.observations(batch_size, seed), "labels": self.labels(batch_size)}

    def bad_inputs(self):
        good = self.observations(3, 0)
        return [({self.input_name: good[:0]}, "empty|at least one"), ({self.input_name: good.numpy()}, "(?i)tensor")]

    def test_logits_and_prediction_shapes(self):
        model, inputs = self.make_model(), self.get_inputs(batch_size=4)
        output = self.run_forward(model, inputs)
        assert output.logits.shape == (4, model.config.num_labels)
        probabilities = model.predict_proba(inputs[self.input_name], seeded())
        torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(4))
        assert torch.equal(model.predict(inputs[self.input_name], seeded()), probabilities.argmax(dim=1))

    def test_bad_labels_are_refused(self):
        model, inputs = self.make_model(), self.get_inputs()
        with pytest.raises(ValueError, match="torch.long"):
            self.run_forward(model, {**inputs, "labels": inputs["labels"].float()})
        with pytest.raises(ValueError, match=r"\[0, 2\) or be -100"):
            model.check_batch({**inputs, "labels": torch.tensor([0, 5, -100])})
        with pytest.raises(ValueError, match="class ids"):
            model.sample(2, labels=[0, 7])

    def test_class_conditional_samples_differ_by_class(self):
        model = self.make_model()
        start = model.prior.sample_reference(3, seeded(1))
        first = model.prior.sample_from(start, model.prior_sampler(), seeded(2), labels=torch.tensor([0, 0, 0]))
        second = model.prior.sample_from(start, model.prior_sampler(), seeded(2), labels=torch.tensor([1, 1, 1]))
        assert not torch.allclose(first, second)
        samples = model.sample(3, seeded(1), labels=[0, 1, 0])
        assert samples.shape[0] == 3 and samples.shape == model.sample(3, seeded(1)).shape


class TestTabularVariational(SemiSupervisedTester):
    def get_config(self, **overrides):
        return LatentEBMClassificationConfig.for_table(fitted(), hidden_dim=16, **{**TINY, **overrides})

    def observations(self, batch_size, seed):
        return fitted().transform(toy_table(batch_size, seed))[0]

    def bad_input_values(self):
        good = self.observations(3, 0)
        codes = good.clone()
        codes[0, -1] = 7.0  # a category code outside the colour vocabulary
        return [({"features": codes}, "category codes"), ({"features": good * float("nan")}, "NaN")]


class TestTabularLangevin(TestTabularVariational):
    def get_config(self, **overrides):
        return super().get_config(**{"learner": "coupling_mle", **overrides})


class TestImageVariational(SemiSupervisedTester):
    input_name = "pixel_values"

    def get_config(self, **overrides):
        return LatentEBMClassificationConfig.for_images(base_channels=4, **{**TINY, "num_labels": 2, **overrides})

    def observations(self, batch_size, seed):
        return torch.rand(batch_size, 1, 28, 28, generator=seeded(seed)) * 2 - 1

    def bad_input_values(self):
        return [({"pixel_values": self.observations(3, 0) * 5}, r"\[-1, 1\]")]


class TestTextVariational(SemiSupervisedTester):
    input_name = "input_ids"

    def get_config(self, **overrides):
        return LatentEBMClassificationConfig.for_text(vocab_size=30, max_length=12, embedding_dim=8, hidden_dim=16,
                                                      **{**TINY, "num_labels": 2, **overrides})

    def observations(self, batch_size, seed):
        ids = torch.randint(4, 30, (batch_size, 8), generator=seeded(seed))
        ids[:, 0], ids[:, -1] = 1, 2
        return ids

    def bad_input_values(self):
        return [({"input_ids": self.observations(3, 0).fill_(40)}, "another tokenizer")]


def test_coupling_prior_marginal_and_classifier_are_one_energy():
    model = LatentEBMForSemiSupervisedClassification(
        LatentEBMClassificationConfig.for_table(fitted(), hidden_dim=16, **TINY))
    latents = torch.randn(6, 4)
    logits = model.prior.logits(latents)
    torch.testing.assert_close(model.prior.energy(latents), -torch.logsumexp(logits, dim=1))
    potential = model.prior.class_potential(torch.tensor([1] * 6))
    torch.testing.assert_close(potential(latents), -logits[:, 1] + latents.pow(2).sum(dim=1) / 2)


def test_semi_supervised_learning_classifies_a_table_from_ten_labels(tmp_path):
    train, test = toy_table(300, seed=0), toy_table(200, seed=1)
    preprocessor = fitted(train)
    features, labels = preprocessor.transform(train)
    few = few_label_split(labels, 5, seed=0)
    assert int((few != UNLABELLED).sum()) == 10
    torch.manual_seed(0)
    model = LatentEBMForSemiSupervisedClassification(
        LatentEBMClassificationConfig.for_table(preprocessor, hidden_dim=32, latent_dim=4,
                                                sampler_config={"prior_steps": 10}))
    test_features, test_labels = preprocessor.transform(test)
    before = (model.predict(test_features) == test_labels).float().mean()
    import datasets

    data = datasets.Dataset.from_dict({"features": features.numpy(), "labels": few.numpy()})
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=300, batch_size=32, seed=0, sample_every=0,
                             checkpoint_every=0, log_every=10, labelled_batch_size=10)
    trainer = LatentEBMTrainer(model, data, args)
    trainer.train()
    model.eval()
    accuracy = (model.predict(test) == test_labels).float().mean()  # raw rows through the saved preprocessing
    assert accuracy > 0.9 and accuracy > before + 0.2, (before, accuracy)
    assert (tmp_path / "accuracy_curve.png").exists() and (tmp_path / "samples.csv").exists()
    assert {"label_loss", "label_accuracy", "mutual_information"} <= set(trainer.history[-1])
    # A reloaded model takes raw rows and gives the same probabilities.
    model.save_pretrained(tmp_path / "saved")
    loaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    torch.testing.assert_close(loaded.predict_proba(test), model.predict_proba(test))
    card = (tmp_path / "saved" / "README.md").read_text()
    assert "pipeline_tag: tabular-classification" in card and "no, yes" in card


def test_every_batch_carries_the_labelled_rows_and_resumes_alike(tmp_path):
    model = LatentEBMForSemiSupervisedClassification(
        LatentEBMClassificationConfig.for_table(fitted(), hidden_dim=8, **TINY))
    features, labels = fitted().transform(toy_table())
    few = few_label_split(labels, 3, seed=1)
    trainer = LatentEBMTrainer(model, {"features": features, "labels": few},
                               TrainingArguments(output_dir=str(tmp_path), max_steps=2, batch_size=8,
                                                 labelled_batch_size=4))
    picks = [trainer.labelled_picks(step) for step in range(5)]
    assert all(len(p) == 4 and bool((few[p] != UNLABELLED).all()) for p in picks)
    stream, labelled = torch.cat(picks), (few != UNLABELLED).nonzero().flatten().tolist()
    assert sorted(stream[:6].tolist()) == labelled and sorted(stream[6:12].tolist()) == labelled  # each pass once
    assert torch.equal(trainer.labelled_picks(3), picks[3])  # a pure function of the step
    with pytest.raises(ValueError, match="no row has a label"):
        LatentEBMTrainer(model, {"features": features, "labels": torch.full_like(few, UNLABELLED)},
                         TrainingArguments(output_dir=str(tmp_path), max_steps=2, batch_size=8, labelled_batch_size=4))


def test_preprocessing_round_trip_and_bad_rows():
    frame = toy_table()
    preprocessor = fitted(frame)
    assert preprocessor.numeric_columns == ["height", "weight"]
    assert preprocessor.categorical_columns == {"colour": ["blue", "green", "red"]}
    assert preprocessor.label_names == ["no", "yes"]
    features, labels = preprocessor.transform(frame)
    assert features.shape == (120, 3) and labels.tolist() == (frame["kind"] == "yes").astype(int).tolist()
    back = preprocessor.inverse_transform(features)
    np.testing.assert_allclose(back["height"], frame["height"], rtol=1e-5, atol=1e-5)
    assert back["colour"].tolist() == frame["colour"].tolist()
    assert TabularPreprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict()))).to_dict() == \
        preprocessor.to_dict()
    with pytest.raises(ValueError, match=r"missing \['weight'\], extra \['wieght'\]"):
        preprocessor.transform(frame.rename(columns={"weight": "wieght"}))
    with pytest.raises(ValueError, match="unseen in training: \\['purple'\\]"):
        preprocessor.transform(frame.assign(colour=["purple"] + frame["colour"].tolist()[1:]))
    with pytest.raises(ValueError, match="'height' has 1 empty or NaN"):
        preprocessor.transform(frame.assign(height=[np.nan] + frame["height"].tolist()[1:]))
    with pytest.raises(ValueError, match="non-numeric cells"):
        preprocessor.transform(frame.assign(height=["tall"] + frame["height"].tolist()[1:]))
    with pytest.raises(ValueError, match="mostly numbers"):
        TabularPreprocessor.fit(frame.assign(height=["?"] + frame["height"].astype(str).tolist()[1:]), "kind")
    with pytest.raises(ValueError, match="label 'maybe' was not seen"):
        preprocessor.transform(frame.assign(kind=["maybe"] + frame["kind"].tolist()[1:]))
    # Prediction reads no labels, so a label column with other values does not stop it.
    assert preprocessor.transform(frame.assign(kind="maybe"), with_labels=False)[1] is None
    with pytest.raises(ValueError, match="no label column 'target'"):
        TabularPreprocessor.fit(frame, "target")
    unlabelled = preprocessor.transform(toy_table(unlabelled_every=4))[1]
    assert (unlabelled == UNLABELLED).sum() == 30


def test_few_label_split_is_seeded_and_stratified():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20 + [UNLABELLED] * 5)
    kept = few_label_split(labels, 4, seed=3)
    assert torch.equal(kept, few_label_split(labels, 4, seed=3))
    assert not torch.equal(kept, few_label_split(labels, 4, seed=4))
    assert torch.bincount(kept[kept != UNLABELLED]).tolist() == [4, 4, 4]
    assert bool((labels[kept != UNLABELLED] == kept[kept != UNLABELLED]).all())
    with pytest.raises(ValueError, match="class 2 has 20 labelled rows, fewer than labels_per_class 25"):
        few_label_split(labels, 25)


def test_tabular_files_load_with_a_stratified_test_split(tmp_path):
    frame = toy_table(100, unlabelled_every=5)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for path in (tmp_path / "t.csv", tmp_path / "t.parquet"):
        splits = load_tabular_dataset(str(path), label_column="kind", seed=0)
        assert len(splits["train"]) + len(splits["test"]) == 100
        assert splits["test"].to_pandas()["kind"].notna().all()  # unlabelled rows stay in train
    with pytest.raises(ValueError, match="no label column 'y'"):
        load_tabular_dataset(str(tmp_path / "t.csv"), label_column="y")
    with pytest.raises(ValueError, match="label_column"):
        load_tabular_dataset(str(tmp_path / "t.csv"))


def test_bundled_breast_cancer_table():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    splits = load_tabular_dataset("breast_cancer")
    assert len(splits["train"]) + len(splits["test"]) == 569
    assert set(splits["train"].to_pandas()["diagnosis"]) == {"benign", "malignant"}


def test_cli_trains_on_a_csv_with_empty_labels_and_predicts(tmp_path, capsys):
    toy_table(160, unlabelled_every=3).to_csv(tmp_path / "table.csv", index=False)
    rows = toy_table(20, seed=5).drop(columns=["kind"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    overrides = json.dumps({**TINY, "latent_dim": 4})
    common = ["train", "--task", "ssl", "--data", str(tmp_path / "table.csv"), "--label-column", "kind",
              "--max-steps", "4", "--batch-size", "8", "--labelled-batch-size", "4", "--sample-every", "0",
              "--checkpoint-every", "0", "--config-overrides", overrides]
    cli_main(common + ["--labels-per-class", "5", "--output-dir", str(tmp_path / "run")])
    for name in ("config.json", "model.safetensors", "loss_curve.png", "accuracy_curve.png", "README.md"):
        assert (tmp_path / "run" / name).exists(), name
    cli_main(["predict", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "rows.csv"),
              "--output", str(tmp_path / "predictions.csv")])
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert list(predictions.columns) == list(rows.columns) + ["predicted_label", "probability_no", "probability_yes"]
    np.testing.assert_allclose(predictions[["probability_no", "probability_yes"]].sum(axis=1), 1.0, rtol=1e-5)
    for extra, message in [(["--labels-per-class", "500"], "fewer than labels_per_class 500"),
                           (["--label-column", "colourless"], "no label column 'colourless'")]:
        with pytest.raises(SystemExit):
            cli_main(common + extra + ["--output-dir", str(tmp_path / "bad")])
        assert message in capsys.readouterr().err
    rows.drop(columns=["weight"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(SystemExit):
        cli_main(["predict", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "short.csv")])
    assert "missing ['weight']" in capsys.readouterr().err
    # Fewer labelled rows than classes.
    one_label = toy_table(40)
    one_label.loc[1:, "kind"] = None
    one_label.to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(SystemExit):
        cli_main(common[:4] + [str(tmp_path / "one.csv")] + common[5:] + ["--output-dir", str(tmp_path / "one")])
    assert "labelled rows of at least 2 classes" in capsys.readouterr().err


def test_cli_semi_supervised_images_from_a_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, value in (("dark", 40), ("light", 215)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for index in range(8):
            pixels = np.clip(rng.normal(value, 20, (28, 28)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{index}.png")
    overrides = json.dumps({**TINY, "base_channels": 4})
    cli_main(["train", "--task", "ssl", "--dataset", str(tmp_path / "images"), "--labels-per-class", "2",
              "--output-dir", str(tmp_path / "run"), "--max-steps", "3", "--batch-size", "4",
              "--labelled-batch-size", "2", "--sample-every", "0", "--checkpoint-every", "0",
              "--config-overrides", overrides])
    assert (tmp_path / "run" / "samples.png").exists() and (tmp_path / "run" / "accuracy_curve.png").exists()
    cli_main(["predict", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "images"),
              "--output", str(tmp_path / "predictions.csv")])
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 16 and {"index", "label", "predicted_label", "probability_dark",
                                       "probability_light"} <= set(predictions.columns)
