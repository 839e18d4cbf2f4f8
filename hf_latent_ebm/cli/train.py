"""`hf-latent-ebm train`: its arguments and the run (any task of `TASKS`, results JSON and model card)."""

import argparse
import json
import time
from pathlib import Path

import torch

from ..utils import parse_config_overrides
from .tasks import MULTIMODAL_MIN_LENGTH, TASKS


def add_train_command(commands) -> None:
    train = commands.add_parser("train", help="train a latent-EBM prior model")
    train.add_argument("--task", default="image", choices=sorted(TASKS),
                       help="what to train, each task a preset of a registered model kind: " + ", ".join(
                           f"{name} ({task.model_type})" for name, task in sorted(TASKS.items())))
    train.add_argument("--dataset", default=None,
                       help="image and ssl tasks: mnist (the default), fashion_mnist, or a folder of images; "
                            "multimodal task: polymnist (the default) or mnist-captions")
    train.add_argument("--data", default=None,
                       help="text task: 'kjv' (the default, Debian bible-kjv) or a .txt/.csv/.jsonl file; ssl task: a "
                            ".csv/.parquet table or breast_cancer / islr_default (rows with an empty label are "
                            "unlabelled); multimodal task: a folder with modalities.json and a .jsonl index, or a "
                            "multimodal dataset written by save_to_disk; smiles task: a .smi/.txt/.csv file of SMILES "
                            "(default: a 20k subset of MOSES's training split)")
    train.add_argument("--label-column", default=None, help="ssl task on a table: the label column")
    train.add_argument("--labels-per-class", type=int, default=None,
                       help="ssl task: keep this many labels per class (seeded) and treat the rest as unlabelled; "
                            "the validation rows (--validation-fraction) come out of these")
    train.add_argument("--validation-fraction", type=float, default=0.2,
                       help="ssl task: hold out this seeded, stratified share of the labelled rows (after "
                            "--labels-per-class; at least one per class) to score the model every --eval-every steps; "
                            "the best-scoring weights are the saved model, and train_results.json reports "
                            "selected_step and its validation scores. The held-out rows' inputs still train as "
                            "unlabelled rows. 0 turns it off (the last step's model is saved); needs 2+ labelled "
                            "rows per class")
    train.add_argument("--class-priors", choices=["em", "none"], default="em",
                       help="ssl task: 'em' estimates the population's class frequencies from the unlabelled rows "
                            "(EM on the model's own predictions, Saerens et al. 2002) and saves them, so predictions "
                            "re-weight from the balanced labelled rows to them; 'none' keeps the classifier as trained")
    train.add_argument("--eval-every", type=int, default=500,
                       help="ssl task: steps between validation scores (the last step is always scored)")
    train.add_argument("--max-categories", type=int, default=100,
                       help="ssl task on a table: most distinct values a text column may have to be taken as "
                            "categorical (more is refused as free text or an identifier)")
    train.add_argument("--labelled-batch-size", type=int, default=32,
                       help="ssl task: labelled rows added to every batch")
    train.add_argument("--text-column", default="text", help="text task: the column/field of a .csv/.jsonl file")
    train.add_argument("--smiles-column", default=None,
                       help="smiles task on a .csv: the SMILES column (default: 'SMILES' or 'smiles')")
    train.add_argument("--properties", default=None,
                       help="smiles task: comma-separated RDKit properties for a property head p(y | z) that design "
                            "shifts (qed, logp, sa, penalized_logp, mol_weight)")
    train.add_argument("--tokenizer", default="bpe", choices=("word", "bpe"),
                       help="text and multimodal tasks: the tokenizer to train: 'bpe' (byte-level BPE, the default: "
                            "every text round-trips, nothing becomes <unk>) or 'word' (unseen words become <unk>, "
                            "which generation never emits)")
    train.add_argument("--vocab-size", type=int, default=2000, help="text and multimodal tasks: largest vocabulary")
    train.add_argument("--max-length", type=int, default=None,
                       help="text task: longest text in tokens, <bos>/<eos> included (the config's max_length, "
                            "default 40; longer texts are truncated with a warning); multimodal task: longest caption "
                            "in tokens (each text modality's decoder_kwargs max_length; default twice the longest "
                            f"training caption, at least {MULTIMODAL_MIN_LENGTH}; longer captions are refused)")
    train.add_argument("--init-from", default=None, help="start from this trained model (fine-tuning)")
    train.add_argument("--output-dir", required=True)
    train.add_argument("--max-steps", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--sample-every", type=int, default=500)
    train.add_argument("--checkpoint-every", type=int, default=500)
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    train.add_argument("--image-size", type=int, default=None, help="resize folder images to this size")
    train.add_argument("--num-channels", type=int, default=None, choices=(1, 3), help="for folder images")
    train.add_argument("--limit-examples", type=int, default=None, help="train on the first N examples only")
    train.add_argument("--exclude-label", type=int, default=None, help="leave this class out of training")
    train.add_argument("--config-overrides", default=None,
                       help='JSON of LatentEBMConfig fields, e.g. \'{"latent_dim": 100}\'')
    train.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> None:
    from ..hub import write_model_card
    from ..training import LatentEBMTrainer, TrainingArguments, latest_checkpoint, save_pretrained_atomically

    task = TASKS[args.task]
    labelled_batch_size = args.labelled_batch_size if task.labelled_batches else 0
    training_args = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, batch_size=args.batch_size, seed=args.seed,
        sample_every=args.sample_every, checkpoint_every=args.checkpoint_every, labelled_batch_size=labelled_batch_size,
        eval_every=args.eval_every,
    )
    if args.resume and args.init_from:
        raise ValueError("--resume continues this run's own checkpoint; it cannot be combined with --init-from")
    if args.resume:  # the run's own checkpoint provides the model (and tokenizer); the trainer restores the rest
        checkpoint = latest_checkpoint(args.output_dir)
        if checkpoint is None:
            raise ValueError(f"--resume: no checkpoint under {args.output_dir}/checkpoints")
        args.init_from = str(checkpoint)
    overrides = parse_config_overrides(args.config_overrides or None) or {}
    torch.manual_seed(args.seed)
    args.dataset = args.dataset or task.default_dataset
    data = task.load_data(args)
    model = task.make_model(args, overrides, data)
    made = task.make_dataset(args, model, data)
    train_data, eval_data = made if isinstance(made, tuple) else (made, None)
    trainer = LatentEBMTrainer(model, train_data, training_args, eval_data=eval_data)
    started = time.time()
    final = trainer.train(resume=args.resume)
    if task.after_training is not None:
        fitted = task.after_training(args, model, train_data)
        if fitted:
            save_pretrained_atomically(model, Path(args.output_dir))
            final.update(fitted)
    final["wall_time_s"] = round(time.time() - started, 1)
    final["num_train_examples"] = trainer.data.num_examples
    if "labels" in trainer.data.names:
        final["num_train_labels"] = int((trainer.data.column("labels") != -100).sum())
    if eval_data is not None:  # the trainer's `selected_*` entries are the saved model's scores on these rows
        final["num_validation_examples"] = len(eval_data)
    final["dataset"] = task.dataset_name(args)
    final["command"] = args.command_line
    Path(args.output_dir, "train_results.json").write_text(json.dumps(final, indent=2))
    write_model_card(args.output_dir)
    print(json.dumps(final))
    print(f"model and samples written to {args.output_dir}")
