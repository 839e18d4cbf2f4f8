"""`hf-latent-ebm ehr synthesize | train | predict`: health event prediction from the command line."""

import argparse
import csv
import io
import json
from pathlib import Path

import torch

from .training import PREDICTORS

SYNTHETIC_NAME = "synthetic-mimic3"


def _add_data_arguments(parser: argparse.ArgumentParser, synthetic: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mimic3", default=None, help="folder with ADMISSIONS.csv and DIAGNOSES_ICD.csv (or .csv.gz)")
    source.add_argument("--mimic4", default=None,
                        help="folder with admissions.csv, diagnoses_icd.csv and patients.csv (or .csv.gz, or hosp/)")
    if synthetic:
        source.add_argument("--synthetic", action="store_true",
                            help="generate the seeded MIMIC-III-shaped stand-in (--patients) and train on it")
        parser.add_argument("--patients", type=int, default=3000, help="--synthetic: patients to generate")
    parser.add_argument("--icd10-map", default=None,
                        help="--mimic4: ICD-10 -> ICD-9 map (CMS GEMs 2018_I10gem.txt layout, or a CSV ICD10,ICD9)")
    parser.add_argument("--max-patients", type=int, default=None, help="a seeded sample of this many patients")


def _load(args: argparse.Namespace, min_visits: int = 2):
    """The patients dataset, its report and the data's name."""
    from ..data.ehr import load_ehr
    from .synthetic import synthesize_mimic3

    if getattr(args, "synthetic", False):
        folder = synthesize_mimic3(Path(args.output_dir) / "synthetic-data", num_patients=args.patients, seed=args.seed)
        records, report = load_ehr(mimic3=folder, max_patients=args.max_patients, seed=args.seed,
                                   min_visits=min_visits)
        return records, report, SYNTHETIC_NAME
    records, report = load_ehr(mimic3=args.mimic3, mimic4=args.mimic4, icd10_map=args.icd10_map,
                               max_patients=args.max_patients, seed=args.seed, min_visits=min_visits)
    return records, report, "mimic3" if args.mimic3 else "mimic4"


def _synthesize(args: argparse.Namespace) -> None:
    from .synthetic import synthesize_mimic3

    folder = synthesize_mimic3(args.out, num_patients=args.patients, seed=args.seed, max_visits=args.max_visits)
    print(f"{args.patients} synthetic patients written to {folder}/ADMISSIONS.csv and DIAGNOSES_ICD.csv")


def _train(args: argparse.Namespace) -> None:
    from ..hub import write_model_card
    from ..training import replace_file_atomically
    from .cohort import prepare_cohort
    from .training import EHRTrainingArguments, run_experiment

    fractions = tuple(float(value) for value in args.split.split(","))
    training_args = EHRTrainingArguments(output_dir=args.output_dir, max_epochs=args.max_epochs,
                                         batch_size=args.batch_size, seed=args.seed)
    overrides = json.loads(args.config_overrides) if args.config_overrides else None
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    records, report, dataset = _load(args)
    print(report)
    prepared = prepare_cohort(records, fractions, seed=args.seed)
    sizes = {split: len(prepared[split]) for split in ("train", "validation", "test")}
    print(f"{len(prepared['vocabulary'])} codes, {prepared['graph'].num_edges} graph edges; patients {sizes} "
          f"({prepared['forced_train']} placed in train so that every code is seen in training)")
    replace_file_atomically(output / "data_report.json", json.dumps(
        {**report.to_dict(), "splits": sizes, "num_codes": len(prepared["vocabulary"]),
         "graph_edges": prepared["graph"].num_edges, "forced_train": prepared["forced_train"]}, indent=2))
    summary = run_experiment(args.model, prepared, args.task, training_args, overrides, resume=args.resume)
    model = summary.pop("model")
    results = {**summary["test"], "dataset": dataset, "split": "test", "task": args.task, "model": args.model}
    replace_file_atomically(output / "eval_results.json", json.dumps(results, indent=2))
    train_results = {"best_epoch": summary["best_epoch"], "validation": summary["validation"],
                     "train_seconds": summary["train_seconds"], "dataset": dataset, "command": args.command_line}
    replace_file_atomically(output / "train_results.json", json.dumps(train_results, indent=2))
    if hasattr(model, "save_pretrained"):
        write_model_card(output)  # again, now with the test results beside the weights
    print(json.dumps({"test": summary["test"], "best_epoch": summary["best_epoch"]}))
    print(f"results written to {output}")


def _predict(args: argparse.Namespace) -> None:
    from ..training import replace_file_atomically
    from .modeling_chet import ChetForHealthEventPrediction

    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if not (Path(args.model) / "config.json").exists():
        raise OSError(f"{args.model} is not a saved Chet model folder (no config.json)")
    model = ChetForHealthEventPrediction.from_pretrained(args.model).eval()
    records, report, _ = _load(args, min_visits=1)
    print(report)
    scores, unknown = model.predict(records)
    if unknown:
        print(f"{unknown} codes outside the model's vocabulary of {model.config.num_codes} were left out")
    patient_ids = records["patient_id"]
    output = Path(args.output)
    handle = io.StringIO(newline="")  # written whole, then renamed into place: never half a file
    writer = csv.writer(handle)
    if model.config.task == "heart_failure":
        writer.writerow(["patient_id", "heart_failure_probability"])
        writer.writerows(zip(patient_ids, (round(float(p), 6) for p in scores)))
    else:
        k = min(args.top_k, model.config.num_codes)
        top = torch.topk(scores, k, dim=1)
        names = model.config.code_names
        writer.writerow(["patient_id", "rank", "code", "score"])
        for patient, values, indices in zip(patient_ids, top.values.tolist(), top.indices.tolist()):
            writer.writerows([patient, rank + 1, names[index], round(value, 6)]
                             for rank, (value, index) in enumerate(zip(values, indices)))
    replace_file_atomically(output, handle.getvalue())
    print(f"predictions for {len(patient_ids)} patients written to {output}")


def add_ehr_commands(commands) -> None:
    """The `ehr` command group of the `hf-latent-ebm` parser."""
    ehr = commands.add_parser("ehr", help="health event prediction from diagnosis codes (Chet)")
    subcommands = ehr.add_subparsers(dest="ehr_command", required=True)

    synthesize = subcommands.add_parser("synthesize", help="write seeded MIMIC-III-shaped CSVs")
    synthesize.add_argument("--patients", type=int, default=3000)
    synthesize.add_argument("--out", required=True)
    synthesize.add_argument("--seed", type=int, default=0)
    synthesize.add_argument("--max-visits", type=int, default=6)
    synthesize.set_defaults(handler=_synthesize)

    train = subcommands.add_parser("train", help="train Chet (or a baseline) and score it on the test patients")
    _add_data_arguments(train, synthetic=True)
    train.add_argument("--task", default="diagnosis", choices=("diagnosis", "heart_failure"))
    train.add_argument("--model", default="chet", choices=PREDICTORS)
    train.add_argument("--max-epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--split", default="0.7,0.1,0.2", help="train,validation,test fractions of the patients")
    train.add_argument("--config-overrides", default=None, help='JSON of ChetConfig fields, e.g. \'{"dropout": 0.2}\'')
    train.add_argument("--output-dir", required=True)
    train.add_argument("--resume", action="store_true",
                       help="continue from the latest epoch checkpoint in --output-dir (same data and seed)")
    train.set_defaults(handler=_train)

    predict = subcommands.add_parser("predict", help="score the next visit of every patient with a trained model")
    predict.add_argument("--model", required=True, help="a folder written by `ehr train` (save_pretrained)")
    _add_data_arguments(predict, synthetic=False)
    predict.add_argument("--seed", type=int, default=0)
    predict.add_argument("--top-k", type=int, default=20, help="diagnosis: codes listed per patient")
    predict.add_argument("--output", default="predictions.csv")
    predict.set_defaults(handler=_predict)


__all__ = ["add_ehr_commands"]
