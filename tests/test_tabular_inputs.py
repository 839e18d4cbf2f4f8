"""Tables from the user's side: the saved column order of the preprocessing, the CLI's validation split of the
labelled rows, and bad input (infinite cells, free-text columns, empty files) refused with the column or file named."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.data import TabularPreprocessor, read_table
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .test_semi_supervised import TINY, toy_table


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def unsorted_table(rows=64, seed=0):
    """Categorical columns out of alphabetical order, with equal category counts, so a swap would go unnoticed."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    return pd.DataFrame({"zeta": rng.choice(["z1", "z2", "z3"], rows),
                         "alpha": np.where(label == 1, "a3", rng.choice(["a1", "a2"], rows)),
                         "mid": rng.normal(label, 1.0), "target": np.where(label == 1, "pos", "neg")})


def test_categorical_column_order_survives_sorted_json_and_reload(tmp_path):
    frame = unsorted_table()
    preprocessor = TabularPreprocessor.fit(frame, "target")
    assert list(preprocessor.categorical_columns) == ["zeta", "alpha"]
    # config.json is written with sorted keys; the order must survive that.
    again = TabularPreprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict(), sort_keys=True)))
    assert again.columns == preprocessor.columns == ["mid", "zeta", "alpha"]
    assert torch.equal(again.transform(frame)[0], preprocessor.transform(frame)[0])

    torch.manual_seed(0)
    model = LatentEBMForSemiSupervisedClassification(
        LatentEBMClassificationConfig.for_table(preprocessor, hidden_dim=8, **TINY))
    features, labels = preprocessor.transform(frame)
    LatentEBMTrainer(model, {"features": features, "labels": labels},
                     TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=3, batch_size=16, sample_every=0,
                                       checkpoint_every=0)).train()
    model.eval().save_pretrained(tmp_path / "saved")
    rows = frame.sample(frac=1.0, random_state=1)[["alpha", "mid", "zeta"]]  # shuffled rows and columns
    expected = model.predict_proba(rows, seeded())
    for loaded in (LatentEBMForSemiSupervisedClassification.from_pretrained(tmp_path / "saved"),
                   AutoModel.from_pretrained(tmp_path / "saved")):
        assert list(loaded.preprocessor.categorical_columns) == ["zeta", "alpha"]
        torch.testing.assert_close(loaded.eval().predict_proba(rows, seeded()), expected)
    # The test can see a swap: the alphabetical order gives other probabilities (no error: equal category counts).
    swapped = TabularPreprocessor(preprocessor.numeric_columns, preprocessor.means, preprocessor.stds,
                                  dict(sorted(preprocessor.categorical_columns.items())), "target",
                                  preprocessor.label_names)
    assert not torch.allclose(model.predict_proba(swapped.transform(rows, with_labels=False)[0], seeded()), expected)


def test_old_mapping_form_is_read_only_where_order_cannot_matter():
    spec = TabularPreprocessor.fit(unsorted_table(), "target").to_dict()
    one = {**spec, "categorical_columns": {"zeta": ["z1", "z2", "z3"]}}
    assert list(TabularPreprocessor.from_dict(one).categorical_columns) == ["zeta"]
    with pytest.raises(ValueError, match=r"\['alpha', 'zeta'\] as a mapping.*list of \[column, vocabulary\]"):
        TabularPreprocessor.from_dict({**spec, "categorical_columns": dict(spec["categorical_columns"])})


def cli_table(tmp_path, rows=60):
    path = tmp_path / "table.csv"
    toy_table(rows, seed=2).to_csv(path, index=False)
    return ["train", "--task", "ssl", "--data", str(path), "--label-column", "kind", "--max-steps", "4",
            "--batch-size", "8", "--labelled-batch-size", "4", "--sample-every", "0", "--checkpoint-every", "0",
            "--config-overrides", json.dumps(TINY)]


def test_cli_holds_out_validation_rows_and_keeps_the_best_checkpoint(tmp_path, capsys):
    common = cli_table(tmp_path)
    cli_main(common + ["--labels-per-class", "10", "--eval-every", "2", "--output-dir", str(tmp_path / "run")])
    results = json.loads((tmp_path / "run" / "train_results.json").read_text())
    # 10 labels per class, 2 of each held out: 16 trained on, 4 scored; every row's inputs still train.
    assert results["num_train_labels"] == 16 and results["num_validation_examples"] == 4
    assert results["num_train_examples"] == 60
    assert results["selected_step"] in (2, 4) and 0 <= results["selected_validation_accuracy"] <= 1
    assert "selected_validation_log_loss" in results
    history = json.loads((tmp_path / "run" / "validation_history.json").read_text())
    assert [record["step"] for record in history] == [2, 4]

    # Without --labels-per-class every labelled row of the file counts (none kept back as an unscored test split).
    cli_main(common + ["--output-dir", str(tmp_path / "all")])
    results = json.loads((tmp_path / "all" / "train_results.json").read_text())
    labels = toy_table(60, seed=2)["kind"].value_counts()
    held = sum(max(1, round(0.2 * count)) for count in labels)
    assert results["num_train_labels"] == 60 - held and results["num_validation_examples"] == held

    cli_main(common + ["--labels-per-class", "10", "--validation-fraction", "0", "--output-dir", str(tmp_path / "off")])
    results = json.loads((tmp_path / "off" / "train_results.json").read_text())
    assert results["num_train_labels"] == 20 and "selected_step" not in results
    assert "num_validation_examples" not in results

    with pytest.raises(SystemExit):
        cli_main(common + ["--labels-per-class", "1", "--output-dir", str(tmp_path / "one")])
    assert "--validation-fraction 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    assert "--validation-fraction" in capsys.readouterr().out


def test_infinite_numeric_cells_name_the_column_without_numpy_warnings():
    frame = toy_table()
    frame.loc[[3, 7], "weight"] = [np.inf, -np.inf]
    preprocessor = TabularPreprocessor.fit(toy_table(), "kind")
    message = r"'weight' has 2 infinite cells .*rows \[3, 7\]"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would fail the test
        with pytest.raises(ValueError, match=message):
            TabularPreprocessor.fit(frame, "kind")
        with pytest.raises(ValueError, match=message):
            preprocessor.transform(frame)
        with pytest.raises(ValueError, match=message):
            preprocessor.transform(frame, with_labels=False)  # the prediction path


def test_free_text_column_is_refused_as_a_category():
    rng = np.random.default_rng(0)
    frame = toy_table(800)
    frame["comment"] = [f"note {int(i)}" for i in rng.integers(0, 192, 800)]
    distinct = frame["comment"].nunique()
    with pytest.raises(ValueError, match=rf"'comment' has {distinct} distinct values.*drop the column, bin it.*text"):
        TabularPreprocessor.fit(frame, "kind")
    assert len(TabularPreprocessor.fit(frame, "kind", max_categories=200).categorical_columns["comment"]) == distinct
    frame["comment"] = [f"state {i % 51}" for i in range(800)]  # 51 values (US states): a category by default
    assert len(TabularPreprocessor.fit(frame, "kind").categorical_columns["comment"]) == 51


def test_empty_table_files_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        read_table(str(tmp_path / "empty.csv"))
    (tmp_path / "header.csv").write_text("height,kind\n")
    with pytest.raises(ValueError, match=r"header\.csv has columns \['height', 'kind'\] but no rows"):
        read_table(str(tmp_path / "header.csv"))
    pd.DataFrame({"height": pd.Series([], dtype=float)}).to_parquet(tmp_path / "none.parquet")
    with pytest.raises(ValueError, match=r"none\.parquet has columns \['height'\] but no rows"):
        read_table(str(tmp_path / "none.parquet"))
