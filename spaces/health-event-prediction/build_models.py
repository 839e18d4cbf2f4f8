"""Build the Space's bundled models and examples: a seeded synthetic MIMIC-III-shaped cohort, two small Chet models
(next-visit diagnosis and heart failure) trained with the library's `run_experiment`, saved with `save_pretrained` to
models/diagnosis and models/heart_failure, and a few test patients to examples.json.

Re-runnable and deterministic (same seed, one CPU thread): `python spaces/health-event-prediction/build_models.py`.
It overwrites models/ and examples.json; each model trains in a few minutes on one CPU thread.
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from hf_latent_ebm.chet import prepare_cohort, split_patients, synthesize_mimic3
from hf_latent_ebm.chet.cohort import is_heart_failure
from hf_latent_ebm.chet.training import EHRTrainingArguments, run_experiment
from hf_latent_ebm.data.ehr import load_mimic3

HERE = Path(__file__).parent
MODELS = HERE / "models"
SEED = 0
NUM_PATIENTS = 3000
FRACTIONS = (0.7, 0.1, 0.2)
# The paper's learning-rate schedules, cut short where the rate has become too small to matter (diagnosis: 0.01, then
# 0.001 from epoch 20; heart failure: 0.01, 0.001, then 0.0001 from epoch 3): a couple of minutes each on one thread.
EPOCHS = {"diagnosis": 30, "heart_failure": 10}
NUM_EXAMPLES = 6


def pick_examples(test) -> list[dict]:
    """Test patients (never seen in training) with 2-4 input visits of at most 15 codes, half of them with heart
    failure coded in the visit after, in patient order: their input visits and that next visit."""
    chosen = {True: [], False: []}
    for patient in test:
        visits, next_visit = patient["visits"][:-1], patient["visits"][-1]
        heart_failure = any(map(is_heart_failure, next_visit))
        if 2 <= len(visits) <= 4 and max(map(len, visits)) <= 15 and len(chosen[heart_failure]) < NUM_EXAMPLES // 2:
            chosen[heart_failure].append({"patient_id": int(patient["patient_id"]), "visits": visits,
                                          "next_visit": next_visit, "heart_failure_next": heart_failure})
    return sorted(chosen[True] + chosen[False], key=lambda example: example["patient_id"])


def main() -> None:
    torch.set_num_threads(1)  # the same float results on every run, and on any machine
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = synthesize_mimic3(scratch / "data", num_patients=NUM_PATIENTS, seed=SEED, profile="mimic3")
        records, report = load_mimic3(folder)
        print(report)
        prepared = prepare_cohort(records, FRACTIONS, seed=SEED)
        print(f"{len(prepared['vocabulary'])} codes, {prepared['graph'].num_edges} graph edges, patients "
              f"{ {split: len(prepared[split]) for split in ('train', 'validation', 'test')} }")
        for task, epochs in EPOCHS.items():
            started = time.time()
            arguments = EHRTrainingArguments(output_dir=str(scratch / task), max_epochs=epochs, seed=SEED)
            summary = run_experiment("chet", prepared, task, arguments, progress=False)
            out = MODELS / task
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            # The results sit beside the weights before save_pretrained, so the model card it writes lists them. No
            # timings: a re-run writes the same files.
            dataset = f"synthetic-mimic3 ({NUM_PATIENTS} patients, seed {SEED})"
            (out / "eval_results.json").write_text(json.dumps(
                {**summary["test"], "dataset": dataset, "split": "test", "task": task, "model": "chet"}, indent=2))
            train_results = {"best_epoch": summary["best_epoch"], "max_epochs": epochs,
                             "validation": summary["validation"], "dataset": dataset,
                             "command": "python spaces/health-event-prediction/build_models.py"}
            if "decision_threshold" in summary:
                train_results["decision_threshold"] = summary["decision_threshold"]
            (out / "train_results.json").write_text(json.dumps(train_results, indent=2))
            summary["model"].save_pretrained(out)
            print(f"{task}: {time.time() - started:.0f} s, best epoch {summary['best_epoch']}, test {summary['test']}")
        test = split_patients(records, FRACTIONS, seed=SEED)["test"]
        examples = pick_examples(test)
        # One patient a line: readable, and a re-run's diff shows which patients changed.
        (HERE / "examples.json").write_text("[\n" + ",\n".join(map(json.dumps, examples)) + "\n]\n")
        print(f"{len(examples)} examples written to {HERE / 'examples.json'}")


if __name__ == "__main__":
    main()
