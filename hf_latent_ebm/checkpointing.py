"""Atomic, exactly-resumable checkpoints shared by the trainers: each checkpoint a folder written by a rename, a
`latest` pointer beside them, the oldest pruned, and never a checkpoint of a diverged (non-finite) model."""

import os
import shutil
import tempfile
from pathlib import Path

import torch

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
TRAINING_STATE_FILE = "training_state.pt"


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of parameters holding NaN or inf (checked before every checkpoint write)."""
    return [name for name, param in model.named_parameters() if not torch.isfinite(param).all()]


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


def commit_checkpoint(model, output_dir: Path, name: str, write, keep: int) -> Path:
    """Write checkpoint `name` under output_dir/checkpoints atomically with `write(staging_folder)`, point `latest`
    at it and keep the newest `keep` checkpoints of its kind (names sort by their zero-padded count). Refuses to
    write non-finite parameters, so no checkpoint holds a diverged model."""
    bad = nonfinite_parameters(model)
    if bad:
        raise RuntimeError(f"refusing to write checkpoint {name}: non-finite parameters {bad}")
    checkpoints = output_dir / CHECKPOINTS_DIR
    write_atomically(checkpoints / name, write)
    replace_file_atomically(checkpoints / LATEST_FILE, name)
    kind = name.rsplit("-", 1)[0]
    for old in sorted(checkpoints.glob(f"{kind}-*"))[:-keep]:
        shutil.rmtree(old)
    return checkpoints / name


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    pointer = Path(output_dir) / CHECKPOINTS_DIR / LATEST_FILE
    if not pointer.exists():
        return None
    checkpoint = pointer.parent / pointer.read_text().strip()
    if not (checkpoint / TRAINING_STATE_FILE).exists():
        raise OSError(f"{pointer} names {checkpoint}, which has no {TRAINING_STATE_FILE}; the checkpoint is damaged")
    return checkpoint
