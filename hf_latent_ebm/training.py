"""The CLI's training loop: any model's learner on dict batches, atomic and exactly-resumable checkpoints (written by
`checkpointing`), progress output, sample files and loss curves."""

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpointing import (CHECKPOINTS_DIR, LATEST_FILE, TRAINING_STATE_FILE, commit_checkpoint, latest_checkpoint,
                            nonfinite_parameters, replace_file_atomically, save_pretrained_atomically,
                            write_atomically)
from .validation import require_at_least

BEST_WEIGHTS_FILE = "best_model.safetensors"
SELECTION_SET = "validation"  # the evaluation set that picks the saved model


@dataclass
class TrainingArguments:
    """
    Args:
        output_dir (`str`): Where checkpoints, sample grids, the loss curve and the final model go.
        max_steps (`int`, defaults to 1000): Optimizer steps in total (a resumed run counts its earlier steps).
        batch_size (`int`, defaults to 64): Examples per step.
        seed (`int`, defaults to 0): Seeds the data order, the chains' noise and the initial weights.
        sample_every (`int`, defaults to 500): Steps between sample grids (0 = only at the end).
        checkpoint_every (`int`, defaults to 500): Steps between checkpoints (0 = only at the end).
        log_every (`int`, defaults to 10): Steps between loss records.
        num_grid_samples (`int`, defaults to 64): Samples per sample file (grid images, sentences).
        keep_checkpoints (`int`, defaults to 2): Checkpoints kept on disk (oldest removed first).
        labelled_batch_size (`int`, defaults to 0): With labelled data (a `labels` column, -100 for unlabelled
            rows), this many labelled rows join every batch, cycling through them in a seeded order: with 100
            labels among 60k images a plain batch would almost never hold one.
        eval_every (`int`, defaults to 500): With validation data (the trainer's `eval_data`), steps between
            evaluations; the last step is always evaluated. The model saved at the end is the evaluated one with the
            best validation score (`model.validation_metrics`), not the last.
    """

    output_dir: str
    max_steps: int = 1000
    batch_size: int = 64
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 10
    num_grid_samples: int = 64
    keep_checkpoints: int = 2
    labelled_batch_size: int = 0
    eval_every: int = 500

    def __post_init__(self):
        require_at_least(self, ("max_steps", "batch_size", "log_every", "num_grid_samples", "keep_checkpoints"))
        require_at_least(self, ("sample_every", "checkpoint_every", "labelled_batch_size", "eval_every"), 0)


def epoch_order(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a pure function of (seed, epoch), so a resumed run sees the same batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator)


class BatchSource:
    """
    Random-access batches of a model's inputs, read batch by batch from a `datasets.Dataset` (or from a dict of
    tensors, or one tensor of the model's main input), so the corpus never becomes one tensor in memory.

    Args:
        data: A `datasets.Dataset` with a column per input name, a dict of equally long tensors, or a tensor.
        input_names (`tuple[str, ...]`): The model's inputs, the decoder's first (all required) and then the
            learner's (read where the data has them).
        required (`int`): How many of `input_names` must be present.
    """

    def __init__(self, data, input_names: tuple[str, ...], required: int):
        if isinstance(data, torch.Tensor):
            data = {input_names[0]: data}
        columns = list(data) if isinstance(data, dict) else list(getattr(data, "column_names", ()))
        missing = [name for name in input_names[:required] if name not in columns]
        if missing:
            raise ValueError(f"the training data has no {', '.join(missing)} column (it has {', '.join(columns)})")
        names = self.names = [name for name in input_names if name in columns]
        if isinstance(data, dict):
            self.num_examples = len(data[names[0]])
            self._take = lambda indices: {name: data[name][indices] for name in names}
            self._column = lambda name: torch.as_tensor(data[name])
        else:
            rows = data.with_format("torch", columns=names)
            self.num_examples = len(rows)
            self._take = lambda indices: rows[indices.tolist()]
            self._column = lambda name: rows.with_format("torch", columns=[name])[name][:]

    def take(self, indices: torch.Tensor) -> dict:
        return self._take(indices)

    def column(self, name: str) -> torch.Tensor:
        """One whole column (the labels, say), without converting the others."""
        return self._column(name)

    def chunks(self, size: int = 4096):
        for start in range(0, self.num_examples, size):
            yield self.take(torch.arange(start, min(start + size, self.num_examples)))


def plot_curves(history: list[dict], names: list[str], path: Path, x: str = "step",
                linear: tuple[str, ...] = ()) -> None:
    """One panel per recorded quantity against `x` (log scale where all values are positive, except for the names
    in `linear`: a difference whose sign matters), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [record[x] for record in history]
    figure, axes = plt.subplots(1, max(len(names), 1), figsize=(5 * max(len(names), 1), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        values = [record.get(name, float("nan")) for record in history]
        axis.plot(steps, values)
        positive = name not in linear and all(value > 0 for value in values)
        axis.set(title=name.replace("_", " "), xlabel=x, yscale="log" if positive else "linear")
        if not positive:
            axis.axhline(0, color="gray", lw=0.5)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


class LatentEBMTrainer:
    """
    Trains a latent-EBM model with its learner (`model(**batch)`) on dict batches of a `datasets.Dataset`, writing
    checkpoints atomically, sample files (the model writes its own: a grid, sentences), the curve of every loss term
    the learner returns and the final `save_pretrained` model into `args.output_dir`. The data is checked once,
    here, so the training steps need not look at values.

    Resuming from the latest checkpoint restores the weights, optimizer, scheduler, chain generator and data
    position, so a resumed run reaches the same parameters as an uninterrupted one.

    With `eval_data` (rows the training never sees, with labels: a validation split of the labelled rows, never
    the test set), the model is scored every `args.eval_every` steps by its `validation_metrics` (accuracy and
    log loss for a classifier), the scores go to `validation_history.json` and `validation_curve.png`, and the
    best evaluation's weights (highest accuracy, the latest of equals) are the model saved at the end;
    `train_results.json` reports its step and scores. A dict of named sets scores each, and only the one named
    "validation" selects: another set (a test curve for a diagnosis, say) is recorded, never selected on.

    Args:
        model: A latent-EBM model.
        train_data: A `datasets.Dataset` with the model's input columns (e.g. `pixel_values`, `input_ids`); a dict
            of tensors or a tensor of the main input also work.
        args (`TrainingArguments`): The run's settings.
        eval_data (*optional*): Validation rows in the same form as `train_data`, with a `labels` column; or a
            dict of such sets by name.
    """

    def __init__(self, model, train_data, args: TrainingArguments, eval_data=None):
        # Imported here: the EHR trainer imports this module's helpers and none of the latent-EBM parts.
        from .learners.base import CHAIN_DIAGNOSTICS

        self.chain_diagnostics = CHAIN_DIAGNOSTICS
        self.data = BatchSource(train_data, model.input_names, required=len(model.decoder.input_names))
        if self.data.num_examples < args.batch_size:
            raise ValueError(f"the dataset has {self.data.num_examples} examples, fewer than batch_size "
                             f"{args.batch_size}")
        for chunk in self.data.chunks():
            model.check_batch(chunk)
        self.labelled_rows = None
        if args.labelled_batch_size:
            if "labels" not in model.input_names or "labels" not in self.data.names:
                raise ValueError("labelled_batch_size needs a model that learns from labels and a labels column")
            self.labelled_rows = (self.data.column("labels") != -100).nonzero().flatten()
            if len(self.labelled_rows) == 0:
                raise ValueError("labelled_batch_size is set but no row has a label")
        self.eval_sets = {}
        if eval_data is not None:
            if not hasattr(model, "validation_metrics"):
                raise ValueError(f"{type(model).__name__} has no validation_metrics, so it cannot take eval_data")
            named = eval_data if isinstance(eval_data, dict) and not isinstance(
                next(iter(eval_data.values()), None), torch.Tensor) else {SELECTION_SET: eval_data}
            for name, rows in named.items():
                source = BatchSource(rows, model.input_names, required=len(model.decoder.input_names))
                if "labels" not in source.names:
                    raise ValueError(f"the {name} data needs a labels column to score the model")
                labels = source.column("labels")
                if len(labels) == 0 or bool((labels == -100).any()):
                    raise ValueError(f"the {name} data must be labelled rows only (got {len(labels)} rows, "
                                     f"{int((labels == -100).sum())} unlabelled)")
                for chunk in source.chunks():
                    model.check_batch(chunk)
                self.eval_sets[name] = source
        self.model = model
        self.args = args
        self.output_dir = Path(args.output_dir)
        self.eval_history: list[dict] = []
        self.best: dict | None = None  # the best evaluation's record
        self.best_weights: dict | None = None  # its weights, on the CPU
        self.optimizer = model.build_optimizer()
        self.scheduler = model.build_lr_scheduler(self.optimizer)
        self.generator = torch.Generator(device=model.device).manual_seed(args.seed)
        self.step = 0
        self.history: list[dict] = []

    def labelled_picks(self, step: int) -> torch.Tensor:
        """The labelled rows joining batch `step`: positions step * n ... step * n + n - 1 of a stream of seeded
        permutations of the labelled rows, a pure function of (seed, step) so a resumed run sees the same ones."""
        count, size = len(self.labelled_rows), self.args.labelled_batch_size
        positions = torch.arange(step * size, (step + 1) * size)
        orders = {cycle: epoch_order(count, self.args.seed + 1, cycle)
                  for cycle in (positions // count).unique().tolist()}
        return self.labelled_rows[torch.stack([orders[int(p) // count][int(p) % count] for p in positions])]

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        def write(staging: Path):
            self.model.save_pretrained(staging, write_card=False)
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(),
                "history": json.dumps(self.history),
                "eval_history": json.dumps(self.eval_history),
                "best": json.dumps(self.best),
                "args": json.dumps(asdict(self.args)),
            }
            torch.save(state, staging / TRAINING_STATE_FILE)
            if self.best_weights is not None:
                from safetensors.torch import save_file

                save_file(self.best_weights, staging / BEST_WEIGHTS_FILE)

        return commit_checkpoint(self.model, self.output_dir, f"step-{self.step:08d}", write,
                                 self.args.keep_checkpoints)

    def load_checkpoint(self, checkpoint: Path) -> None:
        from safetensors.torch import load_file

        try:
            # On the CPU first: a checkpoint written on a GPU must resume on a machine without one (the optimizer
            # moves its state to the parameters' device; generator states are CPU tensors in any case).
            state = torch.load(checkpoint / TRAINING_STATE_FILE, weights_only=True, map_location="cpu")
            weights = load_file(checkpoint / "model.safetensors", device=str(self.model.device))
        except Exception as error:
            raise OSError(f"cannot resume from {checkpoint}: {type(error).__name__}: {error}") from error
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        try:
            self.generator.set_state(state["generator"])
        except RuntimeError:  # a CPU and a CUDA generator keep states of different kinds and sizes
            warnings.warn(f"{checkpoint} was written on another device type; its chain generator cannot be restored "
                          f"on {self.model.device.type}, so it is reseeded from (seed, step): the continuation is a "
                          "valid run but not the exact one an uninterrupted run would have made", stacklevel=2)
            self.generator.manual_seed(self.args.seed * 1_000_003 + self.step)
        self.history = json.loads(state["history"])
        self.eval_history = json.loads(state.get("eval_history", "[]"))
        self.best = json.loads(state.get("best", "null"))
        if self.best is not None:
            self.best_weights = load_file(checkpoint / BEST_WEIGHTS_FILE)

    # ---- outputs ---------------------------------------------------------------------------------------------
    def write_samples(self, stem: Path) -> None:
        """The model's own sample file at stem + its suffix (a grid for images, sentences for text)."""
        was_training = self.model.training
        self.model.eval()
        # A fixed seed, separate from the training generator, so samples are comparable across steps and resumes.
        sample_generator = torch.Generator(device=self.model.device).manual_seed(self.args.seed + 1)
        self.model.write_samples(stem.with_name(stem.name + self.model.sample_file_suffix),
                                 self.args.num_grid_samples, sample_generator)
        self.model.train(was_training)

    def write_loss_curve(self) -> None:
        """One panel per term the learner logged: loss_curve.png, accuracy_curve.png for accuracies and
        chain_diagnostics.png for an energy-based learner's chain diagnostics (`CHAIN_DIAGNOSTICS`); and the
        validation scores so far."""
        if self.eval_history:
            self.write_validation_curve()
        names = [name for name in (self.history[-1] if self.history else {}) if name != "step"]
        accuracies = [name for name in names if "accuracy" in name]
        diagnostics = [name for name in names if name in self.chain_diagnostics]
        plot_curves(self.history, [name for name in names if name not in accuracies and name not in diagnostics],
                    self.output_dir / "loss_curve.png")
        if accuracies:
            plot_curves(self.history, accuracies, self.output_dir / "accuracy_curve.png")
        if diagnostics:
            plot_curves(self.history, diagnostics, self.output_dir / "chain_diagnostics.png",
                        linear=("energy_difference",))
        replace_file_atomically(self.output_dir / "loss_history.json", json.dumps(self.history))

    # ---- validation ------------------------------------------------------------------------------------------
    def evaluate(self) -> None:
        """Score the model on every evaluation set, record it, and keep its weights if the "validation" set's
        accuracy is the best so far (or equals it: the latest of equals wins)."""
        was_training = self.model.training
        self.model.eval()
        record = {"step": self.step}
        for name, source in self.eval_sets.items():
            # A fixed seed: learners that infer z by a chain classify with noise, and the same weights should score
            # the same at every evaluation and after a resume.
            generator = torch.Generator(device=self.model.device).manual_seed(self.args.seed + 2)
            metrics = self.model.validation_metrics(source.chunks(1000), generator)
            record.update({f"{name}_{metric}": value for metric, value in metrics.items()})
        self.model.train(was_training)
        self.eval_history.append(record)
        if SELECTION_SET not in self.eval_sets:  # diagnostic sets are scored, never selected on
            return
        # Ties go to the later evaluation, not to the lower log loss: with a few dozen validation rows accuracy ties
        # often, and log loss then favours early, under-confident weights (on Fashion-MNIST with 20 validation
        # images it picked step 500 of 10000; docs/semi_supervised.md).
        if self.best is None or record[f"{SELECTION_SET}_accuracy"] >= self.best[f"{SELECTION_SET}_accuracy"]:
            self.best = record
            self.best_weights = {key: value.detach().cpu().clone() for key, value in self.model.state_dict().items()}

    def write_validation_curve(self) -> None:
        names = [name for name in self.eval_history[-1] if name != "step"]
        plot_curves(self.eval_history, names, self.output_dir / "validation_curve.png")
        replace_file_atomically(self.output_dir / "validation_history.json", json.dumps(self.eval_history))

    # ---- loop ------------------------------------------------------------------------------------------------
    def train(self, resume: bool = False, should_stop=None) -> dict:
        """
        Run until `args.max_steps` and write the final checkpoint, samples and model; returns the last loss record.

        Args:
            resume (`bool`, defaults to `False`): Continue from the latest checkpoint in `args.output_dir`.
            should_stop (`Callable[[int], bool]`, *optional*): Called with the step count after every step that
                leaves steps to run (after that step's periodic checkpoint). When it returns True the run writes a
                checkpoint and returns early, without final samples or model; `train(resume=True)` continues it
                exactly. A time budget, say: `self.step < args.max_steps` afterwards tells the caller it stopped.
        """
        args = self.args
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            checkpoint = latest_checkpoint(self.output_dir)
            if checkpoint is None:
                raise OSError(f"--resume: no checkpoint under {self.output_dir / CHECKPOINTS_DIR}")
            self.load_checkpoint(checkpoint)
        num_examples = self.data.num_examples
        steps_per_epoch = num_examples // args.batch_size  # the last partial batch of an epoch is dropped
        self.model.train()
        progress = tqdm(total=args.max_steps, initial=self.step, desc="training", unit="step")
        while self.step < args.max_steps:
            epoch, position = divmod(self.step, steps_per_epoch)
            order = epoch_order(num_examples, args.seed, epoch)
            batch_indices = order[position * args.batch_size:(position + 1) * args.batch_size]
            if self.labelled_rows is not None:
                batch_indices = torch.cat([batch_indices, self.labelled_picks(self.step)])
            batch = {name: values.to(self.model.device) for name, values in self.data.take(batch_indices).items()}
            with self.model.inputs_checked():  # the whole dataset was checked when it was loaded
                output = self.model(**batch, generator=self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            progress.update(1)
            if self.step % args.log_every == 0 or self.step == args.max_steps:
                record = {"step": self.step, **{name: term.item() for name, term in output.loss_terms.items()}}
                losses = [value for name, value in record.items() if name not in self.chain_diagnostics]
                if not all(map(math.isfinite, losses)):  # a diagnostic is NaN when on_nonfinite="reset" reset all
                    raise RuntimeError(f"non-finite loss at step {self.step}: {record}; lower the learning rates "
                                       "or the Langevin step sizes")
                self.history.append(record)
                # The chain diagnostics go to the history and their figure, not the bar.
                progress.set_postfix({name.removesuffix("_loss"): f"{value:.4g}" for name, value in record.items()
                                      if name != "step" and name not in self.chain_diagnostics})
            if self.eval_sets and (self.step == args.max_steps or (args.eval_every and
                                                                    self.step % args.eval_every == 0)):
                self.evaluate()
            if args.sample_every and self.step % args.sample_every == 0:
                self.write_samples(self.output_dir / "samples" / f"step-{self.step:08d}")
            checkpointed = bool(args.checkpoint_every) and self.step % args.checkpoint_every == 0
            if checkpointed:
                self.save_checkpoint()
                self.write_loss_curve()
            if should_stop is not None and self.step < args.max_steps and should_stop(self.step):
                if not checkpointed:
                    self.save_checkpoint()
                    self.write_loss_curve()
                progress.close()
                return self.history[-1] if self.history else {}
        progress.close()
        self.save_checkpoint()
        self.write_loss_curve()
        final = dict(self.history[-1]) if self.history else {}
        if self.best is not None:  # the saved model is the best evaluation's, and the results say which it was
            self.model.load_state_dict(self.best_weights)
            final.update({"selected_step": self.best["step"],
                          **{f"selected_{name}": value for name, value in self.best.items() if name != "step"}})
        self.write_samples(self.output_dir / "samples")
        save_pretrained_atomically(self.model, self.output_dir)
        return final


# The checkpoint helpers live in `checkpointing`; they stay importable from here, where the EHR trainer and the
# research scripts import them.
__all__ = ["TrainingArguments", "LatentEBMTrainer", "BatchSource", "latest_checkpoint", "commit_checkpoint",
           "epoch_order", "write_atomically", "nonfinite_parameters", "plot_curves", "CHECKPOINTS_DIR", "LATEST_FILE",
           "TRAINING_STATE_FILE", "replace_file_atomically", "save_pretrained_atomically"]
