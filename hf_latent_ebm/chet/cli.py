"""`hf-latent-ebm ehr synthesize | train | predict`: health event prediction from the command line."""

import argparse
import csv
import io
import json
from pathlib import Path

import torch

from ..utils import parse_config_overrides
from .synthetic import PROFILES
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
                        help="ICD-10 -> ICD-9 map (CMS GEMs 2018_I10gem.txt layout, or a CSV ICD10,ICD9) for the "
                             "--mimic4 rows with icd_version 10, or for --mimic3 files whose ICD9_CODE column holds "
                             "ICD-10-CM codes (then every code is mapped)")
    parser.add_argument("--max-patients", type=int, default=None, help="a seeded sample of this many patients")


def _check_cohort(prepared: dict, report, task: str) -> None:
    """Refuse, before any training, a cohort that the task cannot be scored on, and say why when the codes were not
    ICD-9."""
    from ..data.ehr import ICD10_ADVICE
    from ..metrics.ehr import RECALL_KS
    from .cohort import is_heart_failure

    vocabulary = prepared["vocabulary"]
    if task == "diagnosis" and len(vocabulary) < max(RECALL_KS):
        problem = (f"only {len(vocabulary)} distinct codes are left in the training patients "
                   f"({', '.join(vocabulary[:5])}); diagnosis prediction is scored by recall@k for k in {RECALL_KS}, "
                   f"which needs at least {max(RECALL_KS)}")
    elif task == "heart_failure" and not any(map(is_heart_failure, vocabulary)):
        problem = (f"no heart-failure code (ICD-9 428.x) is among the {len(vocabulary)} codes of the training "
                   "patients, so there is nothing to learn")
    else:
        return
    if report.codes_like_icd10:
        problem += (f"; {report.codes_like_icd10} of the {report.diagnosis_rows_read} diagnosis rows were dropped as "
                    f"not ICD-9 and {ICD10_ADVICE}")
    raise ValueError(problem)


def _check_model_folder(folder) -> None:
    """`folder` holds a saved Chet model: its config.json names model_type "chet" (an image or text latent-EBM model
    would otherwise load as random Chet weights)."""
    from .configuration_chet import ChetConfig

    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        raise OSError(f"{folder} is not a saved Chet model folder (no config.json)")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise OSError(f"{config_path} is not a readable JSON config: {error}") from None
    if model_type != ChetConfig.model_type:
        raise ValueError(f"{folder} holds a model of type {model_type!r} (config.json model_type), not a Chet model "
                         f"(model_type {ChetConfig.model_type!r}); give --model a folder written by "
                         "`hf-latent-ebm ehr train`")


def _load(args: argparse.Namespace, min_visits: int = 2):
    """The patients dataset, its report and the data's name."""
    from ..data.ehr import ICD10_ADVICE, load_ehr
    from .synthetic import synthesize_mimic3

    if getattr(args, "synthetic", False):
        folder = synthesize_mimic3(Path(args.output_dir) / "synthetic-data", num_patients=args.patients, seed=args.seed)
        records, report = load_ehr(mimic3=folder, max_patients=args.max_patients, seed=args.seed,
                                   min_visits=min_visits)
        return records, report, SYNTHETIC_NAME
    records, report = load_ehr(mimic3=args.mimic3, mimic4=args.mimic4, icd10_map=args.icd10_map,
                               max_patients=args.max_patients, seed=args.seed, min_visits=min_visits)
    if report.codes_like_icd10:
        print(f"note: {report.codes_like_icd10} diagnosis rows were dropped as not ICD-9; {ICD10_ADVICE}")
    return records, report, "mimic3" if args.mimic3 else "mimic4"


def _synthesize(args: argparse.Namespace) -> None:
    from .synthetic import synthesize_mimic3

    folder = synthesize_mimic3(args.out, num_patients=args.patients, seed=args.seed, max_visits=args.max_visits,
                               profile=args.profile)
    print(f"{args.patients} synthetic patients ({args.profile} profile) written to {folder}/ADMISSIONS.csv and "
          "DIAGNOSES_ICD.csv")
    if args.profile == "mimic3":
        from ..data.ehr import load_mimic3
        from .synthetic import MIMIC3_TARGETS, cohort_statistics

        statistics = cohort_statistics(load_mimic3(folder)[0])
        print(f"{statistics['patients']} patients with two or more visits, measured (MIMIC-III target):")
        for name, target in MIMIC3_TARGETS.items():
            print(f"  {name}: {statistics[name]:.3f} ({target})")


def _train(args: argparse.Namespace) -> None:
    from ..hub import write_model_card
    from ..training import replace_file_atomically
    from .cohort import prepare_cohort
    from .training import EHRTrainingArguments, run_experiment

    fractions = tuple(float(value) for value in args.split.split(","))
    training_args = EHRTrainingArguments(output_dir=args.output_dir, max_epochs=args.max_epochs,
                                         batch_size=args.batch_size, seed=args.seed)
    overrides = parse_config_overrides(args.config_overrides)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    records, report, dataset = _load(args)
    print(report)
    prepared = prepare_cohort(records, fractions, seed=args.seed)
    _check_cohort(prepared, report, args.task)
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
    if "decision_threshold" in summary:  # heart failure: chosen on validation, stored in the model's config
        train_results["decision_threshold"] = summary["decision_threshold"]
    replace_file_atomically(output / "train_results.json", json.dumps(train_results, indent=2))
    if hasattr(model, "save_pretrained"):
        write_model_card(output)  # again, now with the test results beside the weights
    print(json.dumps({"test": summary["test"], "best_epoch": summary["best_epoch"],
                      **({"decision_threshold": summary["decision_threshold"]} if "decision_threshold" in summary
                         else {})}))
    print(f"results written to {output}")


def _predict(args: argparse.Namespace) -> None:
    from ..training import replace_file_atomically
    from .modeling_chet import ChetForHealthEventPrediction

    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    _check_model_folder(args.model)
    model = ChetForHealthEventPrediction.from_pretrained(args.model).eval()
    records, report, _ = _load(args, min_visits=1)
    print(report)
    heart_failure = model.config.task == "heart_failure"
    if heart_failure:
        scores, unknown, decisions = model.predict(records, return_decisions=True)
    else:
        scores, unknown = model.predict(records)
    if unknown:
        print(f"{unknown} codes outside the model's vocabulary of {model.config.num_codes} were left out")
    patient_ids = records["patient_id"]
    output = Path(args.output)
    handle = io.StringIO(newline="")  # written whole, then renamed into place: never half a file
    writer = csv.writer(handle)
    if heart_failure:
        # The decision is taken on the unrounded probability, at the threshold stored with the model.
        source = ("stored with the model; `ehr train` chooses it on the validation split"
                  if model.config.decision_threshold is not None else "the default: none is stored with this model")
        print(f"heart_failure_predicted = 1 when the probability is above {model.decision_threshold!r} ({source})")
        writer.writerow(["patient_id", "heart_failure_probability", "heart_failure_predicted"])
        writer.writerows(zip(patient_ids, (round(float(p), 6) for p in scores), decisions.int().tolist()))
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
    synthesize.add_argument("--max-visits", type=int, default=None,
                            help="most admissions per patient (default 6 for clusters, 42 for mimic3)")
    synthesize.add_argument("--profile", default="clusters", choices=PROFILES,
                            help="clusters: the first generator (2-6 visits, 5-15 codes); mimic3: MIMIC-III's "
                                 "published visits and codes per patient, recurrence and heart-failure share")
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

    predict = subcommands.add_parser("predict", help="score the next visit of every patient with a trained model "
                                                      "(heart failure: and decide at the model's stored threshold)")
    predict.add_argument("--model", required=True, help="a folder written by `ehr train` (save_pretrained)")
    _add_data_arguments(predict, synthetic=False)
    predict.add_argument("--seed", type=int, default=0)
    predict.add_argument("--top-k", type=int, default=20, help="diagnosis: codes listed per patient")
    predict.add_argument("--output", default="predictions.csv")
    predict.set_defaults(handler=_predict)


__all__ = ["add_ehr_commands"]
