"""Continue saved text models from their latest checkpoint, in chunks, on any device, within a time budget.

For longer training on a machine that has neither the corpus nor `datasets` (a lent GPU host): export the token ids
that scripts/text_table.py trains on, carry them with the checkpoints, continue there, and bring back a checkpoint.

    python research/text/text_continue.py --export-ids runs/kjv_train_ids.pt                  # here, once
    python research/text/text_continue.py runs/x/mle-ebm --ids runs/kjv_train_ids.pt --max-steps 8000 \\
        --chunk 250 --time-budget 480 --device cuda                                      # there

Every `--chunk` steps a checkpoint is kept (none is removed), so runs of several seeds that reach different steps
in the same time can be compared at the last step all of them reached. Seed and batch size come from the
checkpoint's own training arguments, so the continuation sees the batches an uninterrupted run would. No chunk is
started that the last chunk's duration says would end past `--time-budget`. Each chunk's step, device and seconds
are appended to continue_log.json, and its time added to training_time.json (the total that text_table.py reports).
"""

import argparse
import json
import time
from pathlib import Path

import torch

from hf_latent_ebm import LatentEBMForTextGeneration
from hf_latent_ebm.training import TRAINING_STATE_FILE, LatentEBMTrainer, TrainingArguments, latest_checkpoint

TIMING_FILE = "training_time.json"  # as in scripts/text_table.py
LOG_FILE = "continue_log.json"


def export_ids(data: str, vocab_size: int, max_length: int, path: Path) -> None:
    """The training ids exactly as scripts/text_table.py builds them (fixed split, word tokenizer, longest padding)."""
    from hf_latent_ebm.data import load_text_dataset
    from hf_latent_ebm.tokenization import train_tokenizer

    texts = list(load_text_dataset(data)["train"]["text"])
    tokenizer = train_tokenizer(texts, kind="word", vocab_size=vocab_size, max_length=max_length)
    ids = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")["input_ids"]
    if ids.max() >= 2 ** 15:
        raise ValueError(f"vocabulary of {len(tokenizer)} does not fit the int16 export")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ids.to(torch.int16), path)  # a quarter of int64's size, for the 64 MiB a device call carries
    print(f"{tuple(ids.shape)} training ids of {data} written to {path}")


def continue_training(model_dir: Path, ids: torch.Tensor, max_steps: int, chunk: int, time_budget: float,
                      device: str) -> int:
    checkpoint = latest_checkpoint(model_dir)
    if checkpoint is None:
        raise SystemExit(f"no checkpoint under {model_dir}/checkpoints to continue from")
    state = torch.load(checkpoint / TRAINING_STATE_FILE, weights_only=True, map_location="cpu")
    saved = json.loads(state["args"])
    if max_steps <= state["step"]:
        raise SystemExit(f"{model_dir} is already at step {state['step']} >= --max-steps {max_steps}")
    model = LatentEBMForTextGeneration.from_pretrained(checkpoint).to(device)
    if int(ids.max()) >= model.config.vocab_size:
        raise SystemExit(f"the ids reach {int(ids.max())}, beyond the model's vocabulary of {model.config.vocab_size}")
    args = TrainingArguments(output_dir=str(model_dir), max_steps=state["step"], batch_size=saved["batch_size"],
                             seed=saved["seed"], sample_every=0, checkpoint_every=0,
                             num_grid_samples=saved["num_grid_samples"], keep_checkpoints=10 ** 6)
    trainer = LatentEBMTrainer(model, ids, args)
    log_path, timing_path = model_dir / LOG_FILE, model_dir / TIMING_FILE
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    total = json.loads(timing_path.read_text())["seconds"] if timing_path.exists() else 0.0
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    started, last_chunk, first = time.time(), 0.0, True
    while args.max_steps < max_steps and (first or time.time() - started + last_chunk <= time_budget):
        chunk_started = time.time()
        args.max_steps = min(max_steps, (args.max_steps // chunk + 1) * chunk)  # chunk boundaries: common steps
        trainer.train(resume=first)  # ends with a checkpoint and save_pretrained at args.max_steps
        first, last_chunk = False, time.time() - chunk_started
        total += last_chunk
        log.append({"step": trainer.step, "seconds": round(last_chunk, 1), "device": device_name})
        log_path.write_text(json.dumps(log, indent=1))
        timing_path.write_text(json.dumps({"steps": trainer.step, "seconds": round(total, 1)}))
        print(json.dumps(log[-1] | trainer.history[-1]), flush=True)
    return trainer.step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="*", help="folders written by text_table.py (with checkpoints/)")
    parser.add_argument("--ids", help="a .pt file written by --export-ids")
    parser.add_argument("--export-ids", help="write the training ids of --data here and stop")
    parser.add_argument("--data", default="kjv")
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=250, help="steps between kept checkpoints")
    parser.add_argument("--time-budget", type=float, default=float("inf"), help="seconds; checked between chunks")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.export_ids:
        export_ids(args.data, args.vocab_size, args.max_length, Path(args.export_ids))
        return
    if not args.model_dirs or args.ids is None or args.max_steps is None:
        parser.error("give model folders, --ids and --max-steps (or --export-ids)")
    if args.chunk < 1:
        parser.error(f"--chunk must be >= 1, got {args.chunk}")
    ids = torch.load(args.ids, weights_only=True).long()
    for model_dir in map(Path, args.model_dirs):
        step = continue_training(model_dir, ids, args.max_steps, args.chunk, args.time_budget, args.device)
        print(f"{model_dir}: step {step}")


if __name__ == "__main__":
    main()
