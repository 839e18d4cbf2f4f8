"""Issue 32, item 1, first evidence: can Chet learn "repeat the last visit"?

Toy cohorts where the right answer is (mostly) the last visit's codes, Chet (the paper's sizes and schedule unless
overridden) trained with the library's own entry point (`run_experiment`) beside the baselines, and a look at the
scores Chet gives to the codes of the last input visit (all of them persistent codes at the visit that carries them)
against the others.

    OMP_NUM_THREADS=1 .venv/bin/python research/ehr/toy_repeat.py --cohort same --codes 80 --epochs 30
    OMP_NUM_THREADS=1 .venv/bin/python research/ehr/toy_repeat.py --cohort persist --codes 254 --epochs 30

Cohorts (seeded): `same`: each patient draws 3-8 codes (Zipf-like popularity) and every visit (2-6 of them) is that
set; `persist`: a first visit of 3-8 codes, then each code persists with probability 0.8 and 0-2 new codes join.
Prints one JSON line per model and the score diagnostics; writes nothing outside a temporary folder.
"""

import argparse
import json
import tempfile
import time

import datasets
import numpy as np
import torch

from hf_latent_ebm.chet import PackedCohort, prepare_cohort
from hf_latent_ebm.chet.training import EHRTrainingArguments, predict_scores, run_experiment


def toy_cohort(kind: str, num_patients: int, num_codes: int, seed: int):
    rng = np.random.default_rng(seed)
    names = [f"{100 + index}.{index % 10}" for index in range(num_codes)]  # ICD-9-shaped, none is 428.x
    popularity = 1.0 / np.arange(1, num_codes + 1) ** 0.7
    popularity /= popularity.sum()
    patients = []
    for _ in range(num_patients):
        num_visits = int(rng.integers(2, 7))
        visit = set(rng.choice(num_codes, size=int(rng.integers(3, 9)), replace=False, p=popularity).tolist())
        visits = [visit]
        for _ in range(num_visits - 1):
            if kind == "same":
                visit = set(visit)
            else:
                visit = {code for code in visit if rng.random() < 0.8}
                visit |= set(rng.choice(num_codes, size=int(rng.integers(0, 3)), p=popularity).tolist())
                visit = visit or {int(rng.choice(num_codes, p=popularity))}
            visits.append(visit)
        patients.append([[names[code] for code in sorted(visit)] for visit in visits])
    return datasets.Dataset.from_dict({"patient_id": list(range(num_patients)), "visits": patients})


def last_visit_diagnostics(model, cohort: PackedCohort) -> dict:
    """Chet's sigmoid scores for the codes of the last input visit (persistent at that visit), those of earlier
    visits that the last one dropped, and the others, split by whether the code is in the target visit; and how
    many of a patient's top-|last visit| codes are its last visit's codes."""
    scores = predict_scores(model, cohort)
    patients = torch.arange(len(cohort))
    batch = cohort.batch(patients, "diagnosis")
    labels = cohort.labels_for(patients, "diagnosis").bool()
    last, earlier = torch.zeros_like(labels), torch.zeros_like(labels)
    position = batch["visit_position"]
    for visit in range(len(position)):
        patient = int(batch["visit_patient"][visit])
        is_last = position[visit] == position[batch["visit_patient"] == patient].max()
        (last if is_last else earlier)[patient, batch["visit_codes"][visit][batch["visit_mask"][visit]]] = True
    earlier &= ~last  # in an earlier input visit, dropped by the last one
    ranks = torch.argsort(torch.argsort(scores, dim=1, descending=True), dim=1)
    top_last = (ranks < last.sum(1, keepdim=True)) & last
    never = ~last & ~earlier
    groups = {"last & target": last & labels, "last & not target": last & ~labels,
              "dropped & target": earlier & labels, "dropped & not target": earlier & ~labels,
              "never & target": never & labels, "never & not target": never & ~labels}
    return {"mean_score": {name: round(float(scores[mask].mean()), 4) if mask.any() else None
                           for name, mask in groups.items()},
            "mean_rank": {name: round(float(ranks[mask].double().mean()), 2) if mask.any() else None
                          for name, mask in groups.items()},
            "last_codes_in_top_len_last": round(float(top_last.sum() / last.sum()), 4)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cohort", choices=("same", "persist"), default="same")
    parser.add_argument("--patients", type=int, default=1500)
    parser.add_argument("--codes", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="last_visit,logistic_regression,retain,chet")
    parser.add_argument("--config-overrides", default=None, help="JSON of ChetConfig fields for chet")
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = toy_cohort(args.cohort, args.patients, args.codes, args.seed)
    prepared = prepare_cohort(records, seed=args.seed)
    print(json.dumps({"cohort": args.cohort, "patients": args.patients, "codes": len(prepared["vocabulary"]),
                      "graph_edges": prepared["graph"].num_edges, "epochs": args.epochs}))
    overrides = json.loads(args.config_overrides) if args.config_overrides else None
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as folder:
            started = time.time()
            summary = run_experiment(name, prepared, "diagnosis",
                                     EHRTrainingArguments(output_dir=folder, max_epochs=args.epochs, seed=args.seed),
                                     overrides if name == "chet" else None, progress=False)
        line = {"model": name, **{key: round(100 * value, 2) for key, value in summary["test"].items()},
                "best_epoch": summary["best_epoch"], "seconds": round(time.time() - started, 1)}
        if name == "chet":
            line["train_loss"] = [round(entry["train_loss"], 4) for entry in summary["history"]][::5]
            line["validation_wf1"] = [round(100 * entry["validation_weighted_f1"], 2)
                                      for entry in summary["history"]][::5]
            line.update(last_visit_diagnostics(summary["model"], PackedCohort(prepared["test"],
                                                                              len(prepared["vocabulary"]))))
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
