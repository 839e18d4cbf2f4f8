"""Train the image model with the Hugging Face Trainer, which runs under `accelerate launch` / torchrun with DDP.

    python scripts/train_trainer.py --output-dir runs/trainer --max-steps 1000                # one process
    accelerate launch --num_processes 2 scripts/train_trainer.py --output-dir runs/ddp          # DDP, 2 processes
    accelerate launch --cpu --num_processes 2 scripts/train_trainer.py --output-dir runs/ddp    # the same on CPU (gloo)

Each process gets its own share of every global batch; gradients are averaged by DDP before the two-group Adam
step, so the replicas stay identical. With --report-parameters, every process writes a checksum of its parameters
to OUTPUT_DIR/parameters-rank{R}.json (the multi-process test compares them).
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.data import load_image_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--per-device-batch-size", type=int, default=32)
    parser.add_argument("--limit-examples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMConfig fields")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU (DDP over gloo)")
    parser.add_argument("--report-parameters", action="store_true")
    args = parser.parse_args()

    dataset = load_image_dataset(args.dataset, "train").remove_columns("label")
    if args.limit_examples:
        dataset = dataset.select(range(args.limit_examples))
    _, channels, size, _ = dataset[0]["pixel_values"][None].shape
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = LatentEBMForImageGeneration(LatentEBMConfig(image_size=size, num_channels=channels,
                                                        **json.loads(args.config_overrides)))
    optimizer = model.build_optimizer()
    training_args = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=args.per_device_batch_size,
        # Global clipping would couple the prior's and the decoder's gradients; the paper does not clip.
        max_grad_norm=0.0, logging_steps=max(1, args.max_steps // 20), save_strategy="no", report_to=[],
        seed=args.seed, use_cpu=args.cpu, ddp_backend="gloo" if args.cpu else None, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset,
                      optimizers=(optimizer, model.build_lr_scheduler(optimizer)))
    trainer.train()
    if args.report_parameters:
        rank = trainer.args.process_index
        checksums = {name: float(param.detach().double().sum()) for name, param in model.named_parameters()}
        first_batch = next(iter(trainer.get_train_dataloader()))["pixel_values"]
        Path(args.output_dir, f"parameters-rank{rank}.json").write_text(json.dumps(
            {"world_size": trainer.args.world_size, "checksums": checksums,
             "first_batch_sum": float(first_batch.double().sum())}))
    if trainer.is_world_process_zero():
        model.save_pretrained(args.output_dir, write_card=False)
        model.write_card(args.output_dir, with_samples=True)  # a grid of samples on the card


if __name__ == "__main__":
    main()
