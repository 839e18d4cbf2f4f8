"""Issue 32, item 1: how much can any model get on the mimic3-profile cohort? The generator's own next-visit
distribution as a predictor.

The synthetic table's cohort (`scripts/ehr_table.py --profile mimic3 --patients 7493`, data seed 0) is regenerated
with each patient's hidden state before the last admission kept (active disease clusters, heart failure, the
previous admission's codes). For every test patient of split seeds 0, 1 and 2 the last admission is drawn
`--draws` times from that state by the generator's own step (`_Mimic3Process.next_visit`), and the share of draws
holding each code is its score; the heart-failure probability is the share holding a 428.x code. That is the best
any predictor can do up to Monte-Carlo noise, and better than any predictor can do from the visible visits (it
knows the hidden clusters). Scored with the library's metrics on the same test patients and targets as the table.

    OMP_NUM_THREADS=1 .venv/bin/python research/ehr/oracle_mimic3.py --out runs/issue32/oracle.json
"""

import argparse
import json
import shlex
import sys
import tempfile

import numpy as np
import torch

from hf_latent_ebm.chet import PackedCohort, prepare_cohort, synthesize_mimic3
from hf_latent_ebm.chet.cohort import is_heart_failure
from hf_latent_ebm.chet.synthetic import MIMIC3_MAX_VISITS, _Mimic3Process, _mimic3_rows
from hf_latent_ebm.data.ehr import load_mimic3
from hf_latent_ebm.data.icd9 import dot_icd9
from hf_latent_ebm.metrics.ehr import average_precision, diagnosis_metrics, roc_auc


def oracle_scores(states: dict, patient_ids, vocabulary: list[str], draws: int, seed: int):
    process = _Mimic3Process()
    index = {code: position for position, code in enumerate(vocabulary)}
    rng = np.random.default_rng(1000 + seed)
    scores = torch.zeros(len(patient_ids), len(vocabulary))
    heart_failure = torch.zeros(len(patient_ids))
    for row, patient in enumerate(patient_ids):
        state = states[int(patient)]
        for _ in range(draws):
            copy = {**state, "active": set(state["active"]), "previous": list(state["previous"])}
            codes = [dot_icd9(code) for code in process.next_visit(rng, copy, first=False)]
            for code in codes:
                if code in index:
                    scores[row, index[code]] += 1
            heart_failure[row] += any(is_heart_failure(code) for code in codes)
    return scores / draws, heart_failure / draws


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=7493)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    states: dict = {}
    _mimic3_rows(np.random.default_rng(0), args.patients, MIMIC3_MAX_VISITS, states)
    with tempfile.TemporaryDirectory() as folder:
        records, _ = load_mimic3(synthesize_mimic3(folder, num_patients=args.patients, seed=0, profile="mimic3"))
    results = {"command": shlex.join(["python", "research/ehr/oracle_mimic3.py", *sys.argv[1:]]),
               "patients": args.patients, "draws": args.draws, "seeds": {}}
    for seed in args.seeds:
        prepared = prepare_cohort(records, seed=seed)
        test = PackedCohort(prepared["test"], len(prepared["vocabulary"]))
        patients = torch.arange(len(test))
        scores, heart_failure = oracle_scores(states, prepared["test"]["patient_id"], prepared["vocabulary"],
                                              args.draws, seed)
        # Ties (codes no draw held) are broken by a tiny code-popularity term, as last-visit repetition does.
        popularity = torch.bincount(PackedCohort(prepared["train"], len(prepared["vocabulary"])).codes,
                                    minlength=len(prepared["vocabulary"])).float()
        diagnosis = diagnosis_metrics(scores + 1e-6 * popularity / popularity.max(), test.labels_for(patients,
                                                                                                       "diagnosis"))
        labels = test.labels_for(patients, "heart_failure")
        results["seeds"][seed] = {**{key: round(100 * value, 2) for key, value in diagnosis.items()},
                                  "hf_auc": round(100 * roc_auc(heart_failure, labels), 2),
                                  "hf_pr_auc": round(100 * average_precision(heart_failure, labels), 2)}
        print(seed, results["seeds"][seed], flush=True)
    keys = next(iter(results["seeds"].values())).keys()
    results["mean"] = {key: round(float(np.mean([row[key] for row in results["seeds"].values()])), 2) for key in keys}
    print("mean", results["mean"])
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
