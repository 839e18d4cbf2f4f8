"""`hf-latent-ebm` command line: train, sample and evaluate; `ehr ...` for health event prediction."""

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .utils import parse_config_overrides


@dataclass(frozen=True)
class Task:
    """What `hf-latent-ebm train --task NAME` trains: a data loader, the model (the preset: a head's config defaults
    with the settings the data decides and the user's overrides) and its dataset. Every model writes its own
    samples (`write_samples`), so a task needs no sample writer. Adding a task is one entry in `TASKS`.

    Args:
        load_data: `load_data(args)`, the training data the arguments name.
        make_model: `make_model(args, config_kwargs, data)`, a fresh model of the preset with the user's
            `--config-overrides` (or the checkpoint of `args.init_from`).
        make_dataset: `make_dataset(args, model, data)`, a `datasets.Dataset` with the model's input columns, or
            a (training, validation) pair whose validation part (labelled rows with the same columns, or None) the
            trainer scores every `--eval-every` steps to keep the best checkpoint as the model.
        dataset_name: `dataset_name(args)`, the data's name for train_results.json and the model card.
        after_training: `after_training(args, model, train_data)`, optional: fits what needs the trained model
            (the ssl task's class priors) and returns entries for train_results.json; the model is saved again.
    """

    load_data: Callable
    make_model: Callable
    make_dataset: Callable
    dataset_name: Callable
    after_training: Callable | None = None


def _load_images(args: argparse.Namespace):
    from .data import load_image_dataset

    dataset = load_image_dataset(args.dataset, "train", image_size=args.image_size, num_channels=args.num_channels)
    if args.exclude_label is not None:  # the anomaly protocol: train without one class
        dataset = dataset.select((dataset["label"][:] != args.exclude_label).nonzero().flatten().tolist())
    if args.limit_examples:
        dataset = dataset.select(range(min(args.limit_examples, len(dataset))))
    return dataset


def _make_image_model(args: argparse.Namespace, config_kwargs: dict, dataset):
    from . import LatentEBMConfig, LatentEBMForImageGeneration

    if args.init_from:
        return LatentEBMForImageGeneration.from_pretrained(args.init_from)
    channels, size, _ = dataset.features["pixel_values"].shape
    return LatentEBMForImageGeneration(LatentEBMConfig(image_size=size, num_channels=channels, **config_kwargs))


def _load_texts(args: argparse.Namespace) -> list[str]:
    from .data import load_text_dataset

    texts = list(load_text_dataset(args.data or "kjv", text_column=args.text_column, seed=args.seed)["train"]["text"])
    return texts[: args.limit_examples] if args.limit_examples else texts


def _make_text_model(args: argparse.Namespace, config_kwargs: dict, texts: list[str]):
    from . import LatentEBMForTextGeneration, LatentEBMTextConfig
    from .tokenization import train_tokenizer

    if args.init_from:  # fine-tuning keeps the checkpoint's tokenizer, so the vocabulary is unchanged
        model = LatentEBMForTextGeneration.from_pretrained(args.init_from)
        model._require_tokenizer()
        _check_kept_max_length(args, [model.config.max_length])
        return model
    if args.max_length is not None:
        if config_kwargs.get("max_length", args.max_length) != args.max_length:
            raise ValueError(f"--max-length {args.max_length} and --config-overrides' max_length "
                             f"{config_kwargs['max_length']} differ: give one")
        config_kwargs = {**config_kwargs, "max_length": args.max_length}
    max_length = config_kwargs.get("max_length", LatentEBMTextConfig().max_length)
    tokenizer = train_tokenizer(texts, kind=args.tokenizer, vocab_size=args.vocab_size, max_length=max_length)
    config = LatentEBMTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                 unk_token_id=tokenizer.unk_token_id, **config_kwargs)
    model = LatentEBMForTextGeneration(config)
    model.set_tokenizer(tokenizer)
    return model


def _check_kept_max_length(args: argparse.Namespace, kept: list[int]) -> None:
    """A checkpoint's length limit is kept when fine-tuning or resuming: --max-length may only repeat it."""
    if args.max_length is not None and any(length != args.max_length for length in kept):
        raise ValueError(f"--max-length {args.max_length}: the checkpoint {args.init_from} has max_length "
                         f"{sorted(set(kept))}, which fine-tuning and --resume keep")


def _text_dataset(args: argparse.Namespace, model, texts: list[str]):
    import datasets

    # Padded to the corpus's longest text; each training batch drops the columns that are padding in all its rows.
    return datasets.Dataset.from_dict({"input_ids": model.tokenize(texts).cpu().numpy()})


def _load_ssl_data(args: argparse.Namespace):
    """A table (`--data`, with `--label-column`) or an image dataset (`--dataset`), with its labels as ids."""
    from .data import load_tabular_dataset

    if args.data:  # every row: the user's labels are all for training and validation, none kept back unscored
        return load_tabular_dataset(args.data, label_column=args.label_column, test_fraction=0)["train"]
    dataset = _load_images(args)
    return dataset.add_column("labels", dataset["label"][:].tolist())


def _make_ssl_model(args: argparse.Namespace, config_kwargs: dict, data):
    from . import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
    from .data import TabularPreprocessor

    if args.init_from:
        return LatentEBMForSemiSupervisedClassification.from_pretrained(args.init_from)
    if args.data:
        preprocessor = TabularPreprocessor.fit(data, args.label_column or _bundled_label(args.data),
                                               max_categories=args.max_categories)
        if len(preprocessor.label_names) < 2:
            raise ValueError(f"the table's labelled rows hold {len(preprocessor.label_names)} class(es) "
                             f"{preprocessor.label_names}; semi-supervised classification needs labelled rows of at "
                             "least 2 classes")
        return LatentEBMForSemiSupervisedClassification(LatentEBMClassificationConfig.for_table(preprocessor,
                                                                                                 **config_kwargs))
    channels, size, _ = data.features["pixel_values"].shape
    names = data.features["label"].names
    config = LatentEBMClassificationConfig.for_images(num_labels=len(names), id2label=dict(enumerate(names)),
                                                      image_size=size, num_channels=channels, **config_kwargs)
    return LatentEBMForSemiSupervisedClassification(config)


def _bundled_label(name: str) -> str | None:
    from .data import BUNDLED_TABLES

    return BUNDLED_TABLES.get(name)


def _ssl_dataset(args: argparse.Namespace, model, data):
    """(training, validation) datasets of the model's inputs and labels: only `--labels-per-class` labels per class
    kept (seeded) when asked, then a seeded, stratified `--validation-fraction` of those labelled rows held out for
    validation (None when 0); their inputs stay in training as unlabelled rows."""
    import datasets

    from .data import UNLABELLED, few_label_split, validation_split

    if not 0 <= args.validation_fraction < 1:
        raise ValueError(f"--validation-fraction must be in [0, 1), got {args.validation_fraction}")
    if model.preprocessor is not None:
        features, labels = model.preprocessor.transform(data)
        inputs = {"features": features.numpy()}
    else:
        labels = torch.tensor(data["labels"])
        inputs = None
    if args.labels_per_class:
        labels = few_label_split(labels, args.labels_per_class, seed=args.seed)
    counts = torch.bincount(labels[labels != UNLABELLED], minlength=model.config.num_labels)
    if bool((counts == 0).any()):
        missing = [model.config.id2label[int(i)] for i in (counts == 0).nonzero().flatten()]
        raise ValueError(f"every class needs at least one labelled row; none for {missing} "
                         f"({int(counts.sum())} labelled rows for {model.config.num_labels} classes)")
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    if args.validation_fraction:
        if bool((counts < 2).any()):
            few = {model.config.id2label[int(i)]: int(counts[i]) for i in (counts < 2).nonzero().flatten()}
            raise ValueError(f"a validation split (--validation-fraction {args.validation_fraction}) needs at least 2 "
                             f"labelled rows per class, one to train on and one to validate; labelled rows per class: "
                             f"{few}. Give more labels (--labels-per-class) or turn validation off with "
                             "--validation-fraction 0")
        train_labels, held_out = validation_split(labels, args.validation_fraction, seed=args.seed)
    else:
        train_labels = labels
    rows = held_out.nonzero().flatten()
    if inputs is None:
        images = data.select_columns(["pixel_values"])
        train = images.add_column("labels", train_labels.tolist())
        validation = images.select(rows.tolist()).add_column("labels", labels[rows].tolist()) if len(rows) else None
        return train, validation
    train = datasets.Dataset.from_dict({**inputs, "labels": train_labels.numpy()})
    validation = datasets.Dataset.from_dict({**{name: values[rows.numpy()] for name, values in inputs.items()},
                                             "labels": labels[rows].numpy()}) if len(rows) else None
    return train, validation


def _fit_class_priors(args: argparse.Namespace, model, train_data) -> dict:
    """With --class-priors em (the default), the population's class priors from the unlabelled training rows by
    EM, saved in the model's config so predict_proba re-weights to them (docs/semi_supervised.md)."""
    from .data import UNLABELLED

    if args.class_priors == "none":
        return {}
    labels = torch.as_tensor(train_data["labels"][:])
    unlabelled = (labels == UNLABELLED).nonzero().flatten().tolist()
    if not unlabelled:
        return {}
    name = model.decoder.input_names[0]
    inputs = train_data.select(unlabelled).with_format("torch", columns=[name])[name][:]
    counts = torch.bincount(labels[labels != UNLABELLED], minlength=model.config.num_labels)
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    model.eval()
    try:
        priors = model.fit_class_priors(inputs, counts.tolist(), generator)
    except ValueError as error:  # a degenerate estimate: keep the classifier as trained, and say so
        print(f"warning: class priors not applied: {error}", file=sys.stderr)
        return {"class_priors": f"not applied: {error}"}
    return {"class_priors": {model.config.id2label[i]: round(p, 4) for i, p in enumerate(priors)}}


def _load_multimodal(args: argparse.Namespace):
    from .data import load_multimodal_dataset

    return load_multimodal_dataset(args.data or args.dataset, "train", num_examples=args.limit_examples,
                                   seed=args.seed)


def _make_multimodal_model(args: argparse.Namespace, config_kwargs: dict, dataset):
    """The multimodal preset for the dataset's modalities: an image modality per image column (its shape read
    off the data), a text modality per text column over one tokenizer (--tokenizer, byte-level BPE by default)
    trained on all of them, with room for --max-length tokens (by default twice the longest training caption's,
    at least MULTIMODAL_MIN_LENGTH)."""
    import datasets
    import numpy as np

    from . import LatentEBMForMultimodalGeneration, LatentEBMMultimodalConfig, image_modality, text_modality
    from .data import modality_kinds
    from .tokenization import train_tokenizer

    if args.init_from:  # fine-tuning: the checkpoint's modalities and tokenizer; the data must fit them
        model = LatentEBMForMultimodalGeneration.from_pretrained(args.init_from)
        _check_kept_max_length(args, [spec["decoder_kwargs"]["max_length"] for spec in model.config.modalities.values()
                                      if spec["kind"] == "text"])
        return model
    kinds = modality_kinds(dataset)
    texts = [text for name, kind in kinds.items() if kind == "text" for text in dataset[name] if text is not None]
    tokenizer = train_tokenizer(texts, kind=args.tokenizer, vocab_size=args.vocab_size, min_frequency=1) \
        if texts else None
    longest = max((len(ids) for ids in tokenizer(texts)["input_ids"]), default=0) if texts else 0
    if args.max_length is not None and args.max_length < longest:
        raise ValueError(f"--max-length {args.max_length} is shorter than the longest training caption, "
                         f"{longest} tokens with <bos>/<eos>")
    # Headroom for captions longer than the training ones (conditioning on a user's caption): it costs stored
    # padding only, since batches are cut to their longest caption and generation stops at <eos>.
    max_length = args.max_length if args.max_length is not None else max(2 * longest, MULTIMODAL_MIN_LENGTH)
    modalities = {}
    for name, kind in kinds.items():
        if kind == "text":
            modalities[name] = text_modality(tokenizer, max_length=max_length)
            continue
        feature = dataset.features[name]
        if isinstance(feature, datasets.Array3D):  # stored channel-first, as the bundled builders do
            shape = feature.shape
        else:  # PIL images: the first one present gives the shape
            first = int(np.flatnonzero(~np.asarray(dataset.data.column(name).is_null()))[0])
            array = np.asarray(dataset[first][name])
            shape = (1, *array.shape) if array.ndim == 2 else (array.shape[2], array.shape[0], array.shape[1])
        if shape[1] != shape[2]:
            raise ValueError(f"modality {name!r}: images must be square, got {shape[1]}x{shape[2]}")
        modalities[name] = image_modality(image_size=shape[1], num_channels=shape[0])
    model = LatentEBMForMultimodalGeneration(LatentEBMMultimodalConfig(modalities=modalities, **config_kwargs))
    if tokenizer is not None:
        model.set_tokenizer(tokenizer)
    return model


TASKS = {
    "image": Task(load_data=_load_images,
                  make_model=_make_image_model, make_dataset=lambda args, model, dataset: dataset,
                  dataset_name=lambda args: args.dataset),
    "text": Task(load_data=_load_texts, make_model=_make_text_model,
                 make_dataset=_text_dataset, dataset_name=lambda args: args.data or "kjv"),
    "ssl": Task(load_data=_load_ssl_data, make_model=_make_ssl_model, make_dataset=_ssl_dataset,
                dataset_name=lambda args: args.data or args.dataset, after_training=_fit_class_priors),
    "multimodal": Task(load_data=_load_multimodal, make_model=_make_multimodal_model,
                       make_dataset=lambda args, model, dataset: model.prepare_dataset(dataset),
                       dataset_name=lambda args: args.data or args.dataset),
}

# The multimodal task's default caption length limit is at least this many tokens.
MULTIMODAL_MIN_LENGTH = 32

# --dataset's default depends on the task.
DEFAULT_DATASETS = {"image": "mnist", "text": None, "ssl": "mnist", "multimodal": "polymnist"}


def _train(args: argparse.Namespace) -> None:
    from .hub import write_model_card
    from .training import LatentEBMTrainer, TrainingArguments, latest_checkpoint, save_pretrained_atomically

    labelled_batch_size = args.labelled_batch_size if args.task == "ssl" else 0
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
    task = TASKS[args.task]
    args.dataset = args.dataset or DEFAULT_DATASETS[args.task]
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


def _sample(args: argparse.Namespace) -> None:
    from transformers import AutoModel

    if args.num_samples < 1:
        raise SystemExit(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.num_draws < 1:
        raise SystemExit(f"--num-draws must be >= 1, got {args.num_draws}")
    model = AutoModel.from_pretrained(args.model).eval()
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    # A text model writes to stdout unless --output names a file; the others need a file.
    output = args.output or ("-" if model.sample_file_suffix == ".txt" else f"samples{model.sample_file_suffix}")
    written = model.write_samples(output, args.num_samples, generator)
    if written is not None:
        print(f"{args.num_samples} samples written to {written}")
    if hasattr(model, "write_cross_modal_grid") and args.data:
        _write_cross_modal_grids(model, args, Path(written), generator)


def _write_cross_modal_grids(model, args: argparse.Namespace, joint: Path, generator) -> None:
    """Beside the joint grid, one cross-modal grid per modality: a row per example among the first --num-samples
    (of the test split where the data has one) that have it, the example, then --num-draws draws of each other
    modality generated from it."""
    import numpy as np

    from .data import load_multimodal_dataset

    try:
        dataset = load_multimodal_dataset(args.data, "test")
    except ValueError:  # a folder with only its training examples
        dataset = load_multimodal_dataset(args.data, "train")
    for name in model.modality_names:
        if name not in dataset.column_names:
            continue
        rows = np.flatnonzero(~np.asarray(dataset.data.column(name).is_null()))[: args.num_samples]
        values = dataset.select(rows.tolist())[name]
        if model.config.kinds[name] == "image":
            values = [np.asarray(value, dtype=np.uint8) for value in values]
        path = model.write_cross_modal_grid(joint.with_name(f"{joint.stem}_from_{name}{joint.suffix}"), {name: values},
                                            num_draws=args.num_draws, generator=generator)
        print(f"cross-modal samples from {name} ({len(rows)} examples x {args.num_draws} draws) written to {path}")


def _predict(args: argparse.Namespace) -> None:
    """The input columns (or image index and label), the predicted label and one probability column per class."""
    import pandas as pd
    from transformers import AutoModel

    model = AutoModel.from_pretrained(args.model).eval()
    if not hasattr(model, "predict_proba"):
        raise ValueError(f"{args.model} is a {type(model).__name__}, not a classifier")
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    if model.preprocessor is not None:
        from .data import read_table

        frame = read_table(args.data)
        probabilities = model.predict_proba(frame, generator)
    else:
        from .data import load_image_dataset

        dataset = load_image_dataset(args.data, "test" if not Path(args.data).is_dir() else "train")
        pixel_values = dataset["pixel_values"][:]
        probabilities = torch.cat([model.predict_proba(pixel_values[start:start + 500], generator).cpu()
                                   for start in range(0, len(pixel_values), 500)])
        names = dataset.features["label"].names
        frame = pd.DataFrame({"index": range(len(dataset)), "label": [names[i] for i in dataset["label"][:].tolist()]})
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    frame = frame.copy()
    frame["predicted_label"] = [names[i] for i in probabilities.argmax(dim=1).tolist()]
    for position, name in enumerate(names):
        frame[f"probability_{name}"] = probabilities[:, position].cpu().numpy()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.output, index=False)
    print(f"{len(frame)} predictions written to {args.output}")


def _evaluate(args: argparse.Namespace) -> None:
    from transformers import AutoModel

    from . import evaluation
    from .data import load_image_dataset

    model = AutoModel.from_pretrained(args.model).eval()
    dataset = load_image_dataset(args.dataset, args.split)
    pixel_values, labels = dataset["pixel_values"][:], dataset["label"][:]
    if args.limit_examples:
        pixel_values, labels = pixel_values[: args.limit_examples], labels[: args.limit_examples]
    result = {"model": args.model, "metric": args.metric, "dataset": args.dataset, "split": args.split,
              "num_real_images": int(pixel_values.shape[0]), "seed": args.seed}
    started = time.time()
    if args.metric == "fid":
        result["num_samples"] = args.num_samples
        result["fid"] = evaluation.fid_against(model, pixel_values, args.num_samples, args.seed)
    elif args.metric == "mse":
        result["mse"] = evaluation.reconstruction_mse(model, pixel_values, args.seed)
    else:
        if args.anomaly_label is None:
            raise ValueError("--metric anomaly needs --anomaly-label (the held-out class, the positives)")
        result["anomaly_label"] = args.anomaly_label
        result["auprc"] = evaluation.anomaly_auprc(model, pixel_values, labels, args.anomaly_label, args.seed)
    result["wall_time_s"] = round(time.time() - started, 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def _card(args: argparse.Namespace) -> None:
    from .hub import write_model_card

    print(f"model card written to {write_model_card(args.model_dir, args.repo_id)}")


def _push(args: argparse.Namespace) -> None:
    from .hub import push_folder

    commit = push_folder(args.model_dir, args.repo_id, private=args.private, token=args.token)
    print(f"uploaded {args.model_dir} to {args.repo_id}: {getattr(commit, 'commit_url', commit)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-latent-ebm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a latent-EBM prior model")
    train.add_argument("--task", default="image", choices=sorted(TASKS))
    train.add_argument("--dataset", default=None,
                       help="image and ssl tasks: mnist (the default), fashion_mnist, or a folder of images; "
                            "multimodal task: polymnist (the default) or mnist-captions")
    train.add_argument("--data", default=None,
                       help="text task: 'kjv' (the default, Debian bible-kjv) or a .txt/.csv/.jsonl file; ssl task: a "
                            ".csv/.parquet table or breast_cancer / islr_default (rows with an empty label are "
                            "unlabelled); multimodal task: a folder with modalities.json and a .jsonl index, or a "
                            "multimodal dataset written by save_to_disk")
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

    sample = commands.add_parser(
        "sample", help="write samples of a trained model (an image grid, sentences, ...)",
        description="Write --num-samples samples of a trained model: image models an image grid, text models a "
                    "sentence a line, multimodal models a grid with a row per joint sample and a column per "
                    "modality (small images enlarged). With --data, a multimodal model also writes one grid per "
                    "modality beside it (grid_from_caption.png for --output grid.png): a row per example (the "
                    "first --num-samples of the data that have that modality), the given example, then "
                    "--num-draws draws of each other modality generated from it.")
    sample.add_argument("--model", required=True, help="a directory written by save_pretrained (or a Hub id)")
    sample.add_argument("--num-samples", type=int, default=64,
                        help="samples to write; with --data also the rows (examples) of each cross-modal grid")
    sample.add_argument("--output", default=None,
                        help="the file to write (default samples.png for image models; text models print to stdout "
                             "unless given a file, '-' is stdout)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--data", default=None,
                        help="multimodal models: polymnist, mnist-captions or a folder; also write a cross-modal grid "
                             "from each modality of its first examples (see above)")
    sample.add_argument("--num-draws", type=int, default=4,
                        help="with --data: draws generated per example and modality in the cross-modal grids")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser("evaluate", help="score a trained model and write a results JSON")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--metric", required=True, choices=("fid", "mse", "anomaly"))
    evaluate.add_argument("--dataset", default="mnist")
    evaluate.add_argument("--split", default="test", choices=("train", "test"))
    evaluate.add_argument("--num-samples", type=int, default=10_000, help="generated images for FID")
    evaluate.add_argument("--anomaly-label", type=int, default=None, help="the held-out class for --metric anomaly")
    evaluate.add_argument("--limit-examples", type=int, default=None, help="use the first N real images only")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--output", default="eval_results.json")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="classify rows or images with a semi-supervised model")
    predict.add_argument("--model", required=True)
    predict.add_argument("--data", required=True,
                         help="a .csv/.parquet table (tabular models), or an image folder or dataset name (its test "
                              "split)")
    predict.add_argument("--output", default="predictions.csv")
    predict.add_argument("--seed", type=int, default=0)
    predict.set_defaults(handler=_predict)

    card = commands.add_parser("card", help="(re)write the model card README.md of a saved model folder")
    card.add_argument("model_dir")
    card.add_argument("--repo-id", default=None, help="the Hub id the card's snippets should use")
    card.set_defaults(handler=_card)

    push = commands.add_parser("push", help="upload a saved model folder (with its card) to the Hugging Face Hub")
    push.add_argument("model_dir")
    push.add_argument("--repo-id", required=True, help="ORG/NAME")
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", default=None, help="defaults to the HF_TOKEN / huggingface-cli login token")
    push.set_defaults(handler=_push)

    from .chet.cli import add_ehr_commands

    add_ehr_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["hf-latent-ebm", *argv])
    try:
        args.handler(args)
    except (ValueError, OSError, ImportError) as error:
        print(f"hf-latent-ebm {args.command}: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
