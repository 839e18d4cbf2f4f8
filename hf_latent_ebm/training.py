"""The CLI's training loop: the shared MLE learner plus atomic, exactly-resumable checkpoints and progress output."""

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .learning import nonfinite_parameters
from .utils import image_grid

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
TRAINING_STATE_FILE = "training_state.pt"


@dataclass
class TrainingArguments:
    """
    Args:
        output_dir (`str`): Where checkpoints, sample grids, the loss curve and the final model go.
        max_steps (`int`, defaults to 1000): Optimizer steps in total (a resumed run counts its earlier steps).
        batch_size (`int`, defaults to 64): Images per step.
        seed (`int`, defaults to 0): Seeds the data order, the chains' noise and the initial weights.
        sample_every (`int`, defaults to 500): Steps between sample grids (0 = only at the end).
        checkpoint_every (`int`, defaults to 500): Steps between checkpoints (0 = only at the end).
        log_every (`int`, defaults to 10): Steps between loss records.
        num_grid_samples (`int`, defaults to 64): Images per sample grid.
        keep_checkpoints (`int`, defaults to 2): Checkpoints kept on disk (oldest removed first).
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

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "log_every", "num_grid_samples", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sample_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def epoch_order(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a pure function of (seed, epoch), so a resumed run sees the same batches."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator)


def write_atomically(directory: Path, write) -> None:
    """Call write(tmp_dir), then rename tmp_dir to `directory`: a crash leaves the old state, never half a file."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        write(staging)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_file_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def save_pretrained_atomically(model, output_dir: Path) -> None:
    """save_pretrained into a staging folder, then move each file in with an atomic rename."""
    staging = Path(tempfile.mkdtemp(prefix=".pretrained.tmp-", dir=output_dir))
    try:
        model.save_pretrained(staging, write_card=False)  # the card is rendered from output_dir afterwards
        for file in staging.iterdir():
            os.replace(file, output_dir / file.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    pointer = Path(output_dir) / CHECKPOINTS_DIR / LATEST_FILE
    if not pointer.exists():
        return None
    checkpoint = pointer.parent / pointer.read_text().strip()
    if not (checkpoint / TRAINING_STATE_FILE).exists():
        raise OSError(f"{pointer} names {checkpoint}, which has no {TRAINING_STATE_FILE}; the checkpoint is damaged")
    return checkpoint


class LatentEBMTrainer:
    """
    Trains a latent-EBM model with the shared MLE learner (`model(pixel_values=...)`), writing checkpoints
    atomically, sample grids, a loss curve and the final `save_pretrained` model into `args.output_dir`.

    Resuming from the latest checkpoint restores the weights, optimizer, scheduler, chain generator and data
    position, so a resumed run reaches the same parameters as an uninterrupted one.
    """

    def __init__(self, model, train_data: torch.Tensor, args: TrainingArguments):
        if train_data.shape[0] < args.batch_size:
            raise ValueError(f"the dataset has {train_data.shape[0]} examples, fewer than batch_size "
                             f"{args.batch_size}")
        model.check_inputs(train_data[: args.batch_size])
        self.model = model
        self.train_data = train_data
        self.args = args
        self.output_dir = Path(args.output_dir)
        self.optimizer = model.build_optimizer()
        self.scheduler = model.build_lr_scheduler(self.optimizer)
        self.generator = torch.Generator(device=model.device).manual_seed(args.seed)
        self.step = 0
        self.history: list[dict] = []

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        bad = nonfinite_parameters(self.model)
        if bad:
            raise RuntimeError(f"refusing to write a checkpoint at step {self.step}: non-finite parameters {bad}")
        checkpoints = self.output_dir / CHECKPOINTS_DIR
        name = f"step-{self.step:08d}"

        def write(staging: Path):
            self.model.save_pretrained(staging, write_card=False)
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(),
                "history": json.dumps(self.history),
                "args": json.dumps(asdict(self.args)),
            }
            torch.save(state, staging / TRAINING_STATE_FILE)

        write_atomically(checkpoints / name, write)
        replace_file_atomically(checkpoints / LATEST_FILE, name)
        for old in sorted(checkpoints.glob("step-*"))[: -self.args.keep_checkpoints]:
            shutil.rmtree(old)
        return checkpoints / name

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

    # ---- outputs ---------------------------------------------------------------------------------------------
    def write_samples(self, stem: Path) -> None:
        """A sample grid (stem.png) for image models, or generated sentences (stem.txt) for text models."""
        was_training = self.model.training
        self.model.eval()
        # A fixed seed, separate from the training generator, so samples are comparable across steps and resumes.
        sample_generator = torch.Generator(device=self.model.device).manual_seed(self.args.seed + 1)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if hasattr(self.model, "generate_text"):
            texts = self.model.generate_text(self.args.num_grid_samples, sample_generator)
            stem.with_suffix(".txt").write_text("\n".join(texts) + "\n")
        else:
            image_grid(self.model.sample(self.args.num_grid_samples, sample_generator)).save(stem.with_suffix(".png"))
        self.model.train(was_training)

    def write_loss_curve(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [record["step"] for record in self.history]
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        axes[0].plot(steps, [record["decoder_loss"] for record in self.history])
        axes[0].set(title="decoder loss  -log p(x|z+)", xlabel="step", yscale="log")
        axes[1].plot(steps, [record["energy_loss"] for record in self.history])
        axes[1].axhline(0, color="gray", lw=0.5)
        axes[1].set(title="energy loss  E(z+) - E(z-)", xlabel="step")
        figure.tight_layout()
        figure.savefig(self.output_dir / "loss_curve.png", dpi=100)
        plt.close(figure)
        replace_file_atomically(self.output_dir / "loss_history.json", json.dumps(self.history))

    # ---- loop ------------------------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict:
        args = self.args
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            checkpoint = latest_checkpoint(self.output_dir)
            if checkpoint is None:
                raise OSError(f"--resume: no checkpoint under {self.output_dir / CHECKPOINTS_DIR}")
            self.load_checkpoint(checkpoint)
        num_examples = self.train_data.shape[0]
        steps_per_epoch = num_examples // args.batch_size  # the last partial batch of an epoch is dropped
        self.model.train()
        progress = tqdm(total=args.max_steps, initial=self.step, desc="training", unit="step")
        while self.step < args.max_steps:
            epoch, position = divmod(self.step, steps_per_epoch)
            order = epoch_order(num_examples, args.seed, epoch)
            batch_indices = order[position * args.batch_size:(position + 1) * args.batch_size]
            batch = self.train_data[batch_indices].to(self.model.device)
            output = self.model(batch, generator=self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            progress.update(1)
            if self.step % args.log_every == 0 or self.step == args.max_steps:
                record = {"step": self.step, "decoder_loss": output.decoder_loss.item(),
                          "energy_loss": output.energy_loss.item()}
                if not all(map(torch.isfinite, (output.decoder_loss, output.energy_loss))):
                    raise RuntimeError(f"non-finite loss at step {self.step}: {record}; lower the learning rates "
                                       "or the Langevin step sizes")
                self.history.append(record)
                progress.set_postfix(dec=f"{record['decoder_loss']:.1f}", ebm=f"{record['energy_loss']:.3f}")
            if args.sample_every and self.step % args.sample_every == 0:
                self.write_samples(self.output_dir / "samples" / f"step-{self.step:08d}")
            if args.checkpoint_every and self.step % args.checkpoint_every == 0:
                self.save_checkpoint()
                self.write_loss_curve()
        progress.close()
        self.save_checkpoint()
        self.write_loss_curve()
        self.write_samples(self.output_dir / "samples")
        save_pretrained_atomically(self.model, self.output_dir)
        return self.history[-1] if self.history else {}


__all__ = ["TrainingArguments", "LatentEBMTrainer", "latest_checkpoint", "epoch_order", "write_atomically"]
