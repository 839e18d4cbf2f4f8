"""Health event prediction on the synthetic MIMIC-III-shaped cohort: Chet against last-visit repetition, logistic
regression on the bag of codes, a GRU over visit multi-hots and RETAIN, on the same splits, for diagnosis prediction
(weighted F1 with the top-|y| rule, recall@10/20) and heart-failure prediction (ROC-AUC, PR-AUC, F1 at the decision
threshold each predictor chose on its own validation scores, F1 at 0.5). Every predictor picks its best epoch (and,
for heart failure, its threshold) on validation and is scored on test; mean ± std over seeds (a seed sets the patient
split, the initial weights and the data order; the cohort is generated once) into docs/results.md.

Every run's figures go to <out-dir>/<task>/<model>-seed<k>.json as soon as it ends; a rerun skips runs that have
one with every metric of the table (a run from before a metric was added is run again).

    python scripts/ehr_table.py --patients 7500 --seeds 0 1 2
"""

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import torch

from hf_latent_ebm.chet import prepare_cohort, synthesize_mimic3
from hf_latent_ebm.chet.training import PREDICTORS, EHRTrainingArguments, run_experiment
from hf_latent_ebm.data.ehr import load_mimic3
from hf_latent_ebm.utils import describe_device, update_results_section

METRICS = {"diagnosis": ("weighted_f1", "recall_at_10", "recall_at_20"),
           "heart_failure": ("auc", "pr_auc", "f1", "f1_at_0.5")}
HEADERS = {"weighted_f1": "w-F1", "recall_at_10": "R@10", "recall_at_20": "R@20", "auc": "AUC", "pr_auc": "PR-AUC",
           "f1": "F1 (val. threshold)", "f1_at_0.5": "F1 at 0.5"}
NAMES = {"chet": "Chet", "last_visit": "last-visit repetition", "logistic_regression": "logistic regression (bag of codes)",
         "gru": "GRU over visit multi-hots", "retain": "RETAIN"}
PAPER = ("For reference only (real MIMIC-III, not comparable to this synthetic cohort): the paper reports Chet at "
         "w-F1 22.63, R@10 28.64, R@20 37.87 (diagnosis) and AUC 86.14, F1 73.08 (heart failure).")
THRESHOLD_NOTE = ("Heart failure: F1 (val. threshold) flags a patient whose probability is above the threshold that "
                  "maximised the predictor's F1 on its own validation scores at its selected epoch (stored with the "
                  "model, used by `predict`); F1 at 0.5 uses 0.5. Thresholds (mean over seeds): {}.")


def is_done(path: Path, task: str) -> bool:
    """A run's figures exist with every metric of the table."""
    return path.exists() and set(METRICS[task]) <= set(json.loads(path.read_text())["test"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=7500, help="synthetic patients (MIMIC-III has 7,493 usable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--models", nargs="+", default=list(PREDICTORS), choices=list(PREDICTORS))
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--chet-variant", nargs=4, action="append", default=[],
                        metavar=("NAME", "TASK", "EPOCHS", "JSON"),
                        help="an extra Chet row for one task: its name, the task, epochs and ChetConfig overrides as "
                             "JSON, e.g. chet-long diagnosis 64 "
                             "'{\"learning_rate_schedule\": [[0, 0.01], [40, 0.001], [60, 1e-05]]}'")
    parser.add_argument("--profile", default="clusters", choices=("clusters", "mimic3"),
                        help="the synthetic cohort's generator (`ehr synthesize --profile`)")
    parser.add_argument("--tag", default="ehr_synthetic", help="the docs/results.md section")
    parser.add_argument("--out-dir", default="runs/ehr-table")
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--json", default="docs/results/ehr/synthetic-table/ehr_synthetic.json")
    args = parser.parse_args()
    command = shlex.join(["python", "scripts/ehr_table.py", *sys.argv[1:]])
    out = Path(args.out_dir)
    records, report = load_mimic3(synthesize_mimic3(out / "data", num_patients=args.patients, seed=0,
                                                    profile=args.profile))
    print(report)
    # Each row: (row name, predictor, epochs, ChetConfig overrides, its tasks).
    rows = [(name, name, args.max_epochs, None, METRICS) for name in args.models]
    rows += [(name, "chet", int(epochs), json.loads(overrides), (task,))
             for name, task, epochs, overrides in args.chet_variant]
    for seed in args.seeds:
        prepared = None
        for task in args.tasks:
            for name, predictor, epochs, overrides, tasks in rows:
                path = out / task / f"{name}-seed{seed}.json"
                if task not in tasks or is_done(path, task):
                    continue
                prepared = prepared or prepare_cohort(records, seed=seed)
                training_args = EHRTrainingArguments(output_dir=str(out / task / f"{name}-seed{seed}"),
                                                     max_epochs=epochs, seed=seed)
                summary = run_experiment(predictor, prepared, task, training_args, overrides, progress=False)
                summary["epochs"], summary["config_overrides"] = epochs, overrides
                summary.pop("model")
                summary.pop("history")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(summary, indent=2))
                print(task, name, seed, summary["test"], f"{summary['train_seconds']} s", flush=True)

    table = {"command": command, "patients": args.patients, "report": report.to_dict(), "seeds": args.seeds,
             "device": describe_device(torch.device("cpu")), "rows": {}}
    lines = [f"Synthetic MIMIC-III-shaped cohort (`hf-latent-ebm ehr synthesize --profile {args.profile}`, "
             f"{args.patients} patients, "
             f"{report.patients_kept} with two or more visits; split 70/10/20 by patient), best epoch on validation "
             f"(of {args.max_epochs}), scored on test; mean ± std over seeds {args.seeds}, in percent. Command: "
             f"`{command}`.", ""]
    threshold_notes = []
    for task in args.tasks:
        metrics = METRICS[task]
        lines += [f"**{task.replace('_', ' ')}**", "",
                  "| model | " + " | ".join(HEADERS[m] for m in metrics) + " | train s (mean) |",
                  "|---|" + "---|" * (len(metrics) + 1)]
        for name, _, epochs, overrides, tasks in rows:
            if task not in tasks:
                continue
            runs = [json.loads((out / task / f"{name}-seed{seed}.json").read_text()) for seed in args.seeds]
            cells = []
            row = {}
            for metric in metrics:
                values = [100 * run["test"][metric] for run in runs]
                mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
                row[metric] = {"mean": mean, "std": std, "values": values}
                cells.append(f"{mean:.2f} ± {std:.2f}")
            seconds = statistics.mean(run["train_seconds"] for run in runs)
            table["rows"][f"{task}/{name}"] = {**row, "train_seconds": seconds, "epochs": epochs,
                                               "config_overrides": overrides,
                                               "best_epochs": [run["best_epoch"] for run in runs]}
            if task == "heart_failure":
                thresholds = [run["decision_threshold"] for run in runs]
                table["rows"][f"{task}/{name}"]["decision_thresholds"] = thresholds
                threshold_notes.append(f"{name} {statistics.mean(thresholds):.3f}")
            label = NAMES.get(name, f"Chet, {name}: {epochs} epochs, {json.dumps(overrides)}")
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        lines.append("")
    if threshold_notes:
        lines += [THRESHOLD_NOTE.format(", ".join(threshold_notes)), ""]
    lines.append(PAPER)
    update_results_section(args.results, args.tag,
                           f"Health event prediction (Chet, synthetic MIMIC-III, {args.profile} profile)",
                           "\n".join(lines))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(table, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
