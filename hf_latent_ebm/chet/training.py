"""Training health event predictors (Chet and the baselines) by epochs, with the library's data order, atomic
checkpoints and curves: each epoch is scored on the validation split, and the best epoch's weights are the ones
kept and reported on test. For heart failure, the decision threshold is then chosen on the validation split (F1-
optimal, at the best epoch's weights) and stored with the model (`decision_threshold`), so test F1 and `predict`'s
decisions use a threshold that no test patient helped choose."""

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..metrics.ehr import DEFAULT_THRESHOLD, diagnosis_metrics, f1_optimal_threshold, heart_failure_metrics
from ..training import (CHECKPOINTS_DIR, TRAINING_STATE_FILE, commit_checkpoint, epoch_order, latest_checkpoint,
                        plot_curves, replace_file_atomically, save_pretrained_atomically)
from ..validation import require_at_least
from .scoring import predict_scores

WEIGHTS_FILE = "model.safetensors"
BEST_WEIGHTS_FILE = "best_model.safetensors"


def _for_safetensors(state: dict) -> dict:
    # safetensors stores each tensor on its own: copies on the CPU, none sharing memory.
    return {name: value.detach().cpu().clone().contiguous() for name, value in state.items()}


PREDICTORS = ("chet", "last_visit", "logistic_regression", "gru", "retain")
# The ChetConfig fields a run may override (the rest come from the cohort and the task).
TUNABLE_FIELDS = ("code_embedding_dim", "graph_dim", "hidden_dim", "transition_attention_dim", "visit_attention_dim",
                  "code_readout", "dropout", "learning_rate_schedule")
# The validation metric that picks the best epoch, per task.
SELECTION_METRICS = {"diagnosis": "weighted_f1", "heart_failure": "auc"}


@dataclass
class EHRTrainingArguments:
    """
    Args:
        output_dir (`str`): Where checkpoints, curves, results and the best model go.
        max_epochs (`int`, defaults to 30): Epochs over the training patients.
        batch_size (`int`, defaults to 32): Patients per step (the paper's).
        seed (`int`, defaults to 0): Seeds the data order and (through the caller) the initial weights.
        weight_decay (`float`, defaults to 0.0): Adam's L2 penalty.
        keep_checkpoints (`int`, defaults to 1): Epoch checkpoints kept on disk.
        eval_batch_size (`int`, defaults to 256): Patients per scoring call.
    """

    output_dir: str
    max_epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    weight_decay: float = 0.0
    keep_checkpoints: int = 1
    eval_batch_size: int = 256

    def __post_init__(self):
        require_at_least(self, ("max_epochs", "batch_size", "keep_checkpoints", "eval_batch_size"))
        require_at_least(self, ("weight_decay",), 0)


def decision_threshold_of(model) -> float:
    """The heart-failure decision threshold a predictor carries (`decision_threshold`), 0.5 when it has none."""
    threshold = getattr(model, "decision_threshold", None)
    return DEFAULT_THRESHOLD if threshold is None else threshold


def score_predictor(model, cohort, task: str, batch_size: int = 256, threshold: float | None = None) -> dict:
    """The task's metrics (fractions) of a predictor on a cohort encoded with targets; heart-failure "f1" is at
    `threshold`, by default the predictor's own `decision_threshold` (0.5 without one), and "f1_at_0.5" at 0.5."""
    scores = predict_scores(model, cohort, batch_size)
    labels = cohort.labels_for(torch.arange(len(cohort)), task)
    if task == "diagnosis":
        return diagnosis_metrics(scores, labels)
    return heart_failure_metrics(scores, labels, decision_threshold_of(model) if threshold is None else threshold)


def choose_decision_threshold(model, validation, batch_size: int = 256) -> float:
    """Set a heart-failure predictor's `decision_threshold` to the F1-optimal one on the validation cohort (its
    current weights; `f1_optimal_threshold` says how ties and degenerate splits are decided) and return it."""
    scores = predict_scores(model, validation, batch_size)
    labels = validation.labels_for(torch.arange(len(validation)), "heart_failure")
    model.decision_threshold = f1_optimal_threshold(scores, labels)
    return model.decision_threshold


class EHRTrainer:
    """
    Trains a health event predictor (`ChetForHealthEventPrediction` or a baseline of `chet.baselines`) with Adam on
    `PackedCohort` batches, setting the learning rate per epoch from `learning_rate_at(epoch)` (Chet's config
    holds the paper's step schedule). After every epoch it scores the validation split, writes an atomic
    checkpoint (weights, optimizer, history) and keeps the best epoch's weights in memory; `train` ends with those
    weights loaded, for heart failure sets the model's `decision_threshold` to the F1-optimal one on validation
    (`choose_decision_threshold`), and saves a `PreTrainedModel` into `output_dir` (the threshold in its config).

    Args:
        model: The predictor; `model(**batch)` returns an output with `loss` and `logits`.
        train (`PackedCohort`): Training patients, encoded with targets.
        validation (`PackedCohort`): Patients that pick the best epoch.
        task (`str`): "diagnosis" or "heart_failure".
        args (`EHRTrainingArguments`): The run's settings.
        learning_rate_at (callable, *optional*): epoch -> learning rate; a constant 0.01 without one.
    """

    def __init__(self, model, train, validation, task: str, args: EHRTrainingArguments, learning_rate_at=None):
        if task not in SELECTION_METRICS:
            raise ValueError(f"task must be one of {sorted(SELECTION_METRICS)}, got {task!r}")
        for name, cohort in (("train", train), ("validation", validation)):
            if not cohort.has_targets or len(cohort) == 0:
                raise ValueError(f"the {name} cohort needs patients encoded with targets")
        self.model, self.train_cohort, self.validation_cohort = model, train, validation
        self.task, self.args = task, args
        self.learning_rate_at = learning_rate_at or (lambda epoch: 0.01)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate_at(0),
                                          weight_decay=args.weight_decay)
        self.output_dir = Path(args.output_dir)
        self.metric = SELECTION_METRICS[task]
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_state = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def run_epoch(self) -> float:
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate_at(self.epoch)
        order = epoch_order(len(self.train_cohort), self.args.seed, self.epoch)
        total, count = torch.zeros((), device=self.device), 0
        for start in range(0, len(order), self.args.batch_size):
            patients = order[start:start + self.args.batch_size]
            batch = self.train_cohort.batch(patients, self.task)
            output = self.model(**{name: values.to(self.device) for name, values in batch.items()})
            self.optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            self.optimizer.step()
            total += output.loss.detach() * len(patients)
            count += len(patients)
        loss = (total / count).item()
        if not math.isfinite(loss):
            raise RuntimeError(f"non-finite training loss in epoch {self.epoch + 1}; lower the learning rate")
        return loss

    def save_checkpoint(self) -> None:
        from safetensors.torch import save_file

        def write(staging: Path):
            # Weights (the model's and the best epoch's) as safetensors; the optimizer and RNG states beside them.
            save_file(_for_safetensors(self.model.state_dict()), staging / WEIGHTS_FILE)
            if self.best_state is not None:
                save_file(_for_safetensors(self.best_state), staging / BEST_WEIGHTS_FILE)
            state = {"epoch": self.epoch, "optimizer": self.optimizer.state_dict(),
                     "history": json.dumps(self.history), "best": json.dumps(self.best),
                     "args": json.dumps(asdict(self.args)),
                     # Dropout draws from the global generator: restoring it makes a resumed run the same run.
                     "cpu_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
            torch.save(state, staging / TRAINING_STATE_FILE)

        commit_checkpoint(self.model, self.output_dir, f"epoch-{self.epoch:04d}", write, self.args.keep_checkpoints)

    def load_checkpoint(self) -> None:
        from safetensors.torch import load_file

        checkpoint = latest_checkpoint(self.output_dir)
        if checkpoint is None:
            raise OSError(f"--resume: no checkpoint under {self.output_dir / CHECKPOINTS_DIR}")
        try:
            state = torch.load(checkpoint / TRAINING_STATE_FILE, weights_only=True, map_location="cpu")
            weights = load_file(checkpoint / WEIGHTS_FILE)
            best_state = load_file(checkpoint / BEST_WEIGHTS_FILE) if (checkpoint / BEST_WEIGHTS_FILE).exists() \
                else None
        except Exception as error:
            raise OSError(f"cannot resume from {checkpoint}: {type(error).__name__}: {error}") from error
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.history = state["epoch"], json.loads(state["history"])
        self.best, self.best_state = json.loads(state["best"]), best_state
        torch.set_rng_state(state["cpu_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def train(self, resume: bool = False, progress: bool = True) -> dict:
        """Run the remaining epochs; returns {"best_epoch", "validation": metrics of the best epoch, "history"}, and
        for heart failure "decision_threshold"."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        bar = tqdm(total=self.args.max_epochs, initial=self.epoch, desc="training", unit="epoch", disable=not progress)
        while self.epoch < self.args.max_epochs:
            loss = self.run_epoch()
            self.epoch += 1
            metrics = score_predictor(self.model, self.validation_cohort, self.task, self.args.eval_batch_size)
            self.history.append({"epoch": self.epoch, "train_loss": loss,
                                 **{f"validation_{name}": value for name, value in metrics.items()}})
            if self.best is None or metrics[self.metric] > self.best["validation"][self.metric]:
                self.best = {"epoch": self.epoch, "validation": metrics}
                self.best_state = copy.deepcopy(self.model.state_dict())
            self.save_checkpoint()
            bar.update(1)
            bar.set_postfix({"loss": f"{loss:.4f}", f"val {self.metric}": f"{metrics[self.metric]:.4f}",
                             "best epoch": self.best["epoch"]})
        bar.close()
        self.model.load_state_dict(self.best_state)
        if self.task == "heart_failure":
            # The epoch was picked by the threshold-free AUC; the threshold is then picked for those weights, and
            # the best epoch's validation figures are rescored at it.
            self.best["decision_threshold"] = choose_decision_threshold(self.model, self.validation_cohort,
                                                                        self.args.eval_batch_size)
            self.best["validation"] = score_predictor(self.model, self.validation_cohort, self.task,
                                                      self.args.eval_batch_size)
        replace_file_atomically(self.output_dir / "training_history.json", json.dumps(self.history, indent=1))
        names = [name for name in self.history[-1] if name != "epoch"]
        plot_curves(self.history, names, self.output_dir / "training_curves.png", x="epoch")
        if hasattr(self.model, "save_pretrained"):
            save_pretrained_atomically(self.model, self.output_dir)
            self.model.write_card(self.output_dir)
        summary = {"best_epoch": self.best["epoch"], "validation": self.best["validation"], "history": self.history}
        if self.task == "heart_failure":
            summary["decision_threshold"] = self.best["decision_threshold"]
        return summary


def build_predictor(name: str, prepared: dict, task: str, config_overrides: dict | None = None):
    """A fresh predictor for a prepared cohort, and its learning-rate schedule (None: the trainer's constant)."""
    from .baselines import BASELINES
    from .modeling_chet import ChetForHealthEventPrediction

    if name == "chet":
        unknown = sorted(set(config_overrides or {}) - set(TUNABLE_FIELDS))
        if unknown:
            raise ValueError(f"--config-overrides: {', '.join(map(repr, unknown))} is not a ChetConfig field that "
                             f"can be set; the fields are {', '.join(TUNABLE_FIELDS)}")
        model = ChetForHealthEventPrediction.from_cohort(prepared["vocabulary"], prepared["graph"], task=task,
                                                         **(config_overrides or {}))
        return model, model.config.learning_rate_at
    if config_overrides:
        raise ValueError("--config-overrides sets ChetConfig fields; the baselines take none")
    return BASELINES[name](prepared["vocabulary"], task), None


def run_experiment(name: str, prepared: dict, task: str, training_args, config_overrides: dict | None = None,
                   progress: bool = True, resume: bool = False) -> dict:
    """Train predictor `name` on a prepared cohort (best epoch on validation; for heart failure, the decision threshold
    too) and score it on test; the model is returned under "model"."""
    from .cohort import PackedCohort

    torch.manual_seed(training_args.seed)
    model, learning_rate_at = build_predictor(name, prepared, task, config_overrides)
    num_codes = len(prepared["vocabulary"])
    cohorts = {split: PackedCohort(prepared[split], num_codes) for split in ("train", "validation", "test")}
    started = time.time()
    if getattr(model, "trainable", True):
        trainer = EHRTrainer(model, cohorts["train"], cohorts["validation"], task, training_args, learning_rate_at)
        summary = trainer.train(resume=resume, progress=progress)
    else:
        model.fit_frequencies(cohorts["train"])
        summary = {"best_epoch": None, "history": []}
        if task == "heart_failure":
            summary["decision_threshold"] = choose_decision_threshold(model, cohorts["validation"])
        summary["validation"] = score_predictor(model, cohorts["validation"], task)
    summary["train_seconds"] = round(time.time() - started, 2)
    summary["test"] = score_predictor(model, cohorts["test"], task)
    summary["model"] = model
    return summary


__all__ = ["EHRTrainer", "EHRTrainingArguments", "predict_scores", "score_predictor", "choose_decision_threshold",
           "decision_threshold_of", "SELECTION_METRICS", "PREDICTORS", "build_predictor", "run_experiment"]
