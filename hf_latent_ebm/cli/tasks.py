"""The tasks `hf-latent-ebm train --task NAME` trains: per task, how the data loads, which model (preset) it makes and
the dataset the trainer takes. Each is a `Task` registered with `register_task` (a model kind outside the package
brings its own with `register_model_kind(..., tasks=...)`); `TASKS` is that registry."""

import argparse
import functools
import sys

import torch

from ..model_kinds import TASKS, Task, register_task
from ..modalities.text import MIN_MAX_LENGTH as MULTIMODAL_MIN_LENGTH


def _load_images(args: argparse.Namespace):
    from ..data import load_image_dataset

    dataset = load_image_dataset(args.dataset, "train", image_size=args.image_size, num_channels=args.num_channels)
    if args.exclude_label is not None:  # the anomaly protocol: train without one class
        dataset = dataset.select((dataset["label"][:] != args.exclude_label).nonzero().flatten().tolist())
    if args.limit_examples:
        dataset = dataset.select(range(min(args.limit_examples, len(dataset))))
    return dataset


def _make_image_model(args: argparse.Namespace, config_kwargs: dict, dataset, make_config=None):
    """The image model for the data's shape, its config from `make_config` (a preset; the plain config by
    default)."""
    from .. import LatentEBMConfig, LatentEBMForImageGeneration

    if args.init_from:
        return LatentEBMForImageGeneration.from_pretrained(args.init_from)
    channels, size, _ = dataset.features["pixel_values"].shape
    return LatentEBMForImageGeneration((make_config or LatentEBMConfig)(image_size=size, num_channels=channels,
                                                                        **config_kwargs))


def _make_hierarchical_model(args: argparse.Namespace, config_kwargs: dict, dataset):
    from .. import LatentEBMConfig

    # The preset's own arguments may come with --config-overrides: {"layer_sizes": [10, 6], "variational": true}.
    preset = {key: config_kwargs.pop(key) for key in ("layer_sizes", "energy", "variational") if key in config_kwargs}
    return _make_image_model(args, config_kwargs, dataset, functools.partial(LatentEBMConfig.hierarchical, **preset))


def _load_texts(args: argparse.Namespace) -> list[str]:
    from ..data import load_text_dataset

    texts = list(load_text_dataset(args.data or "kjv", text_column=args.text_column, seed=args.seed)["train"]["text"])
    return texts[: args.limit_examples] if args.limit_examples else texts


def _make_text_model(args: argparse.Namespace, config_kwargs: dict, texts: list[str]):
    from .. import LatentEBMForTextGeneration, LatentEBMTextConfig
    from ..tokenization import train_tokenizer

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
    from ..data import load_tabular_dataset

    if args.data:  # every row: the user's labels are all for training and validation, none kept back unscored
        return load_tabular_dataset(args.data, label_column=args.label_column, test_fraction=0)["train"]
    dataset = _load_images(args)
    return dataset.add_column("labels", dataset["label"][:].tolist())


def _make_ssl_model(args: argparse.Namespace, config_kwargs: dict, data):
    from .. import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
    from ..data import TabularPreprocessor

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
    from ..data import BUNDLED_TABLES

    return BUNDLED_TABLES.get(name)


def _ssl_dataset(args: argparse.Namespace, model, data):
    """(training, validation) datasets of the model's inputs and labels: only `--labels-per-class` labels per class
    kept (seeded) when asked, then a seeded, stratified `--validation-fraction` of those labelled rows held out for
    validation (None when 0); their inputs stay in training as unlabelled rows."""
    import datasets

    from ..data import UNLABELLED, few_label_split, validation_split

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
    from ..data import UNLABELLED

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
    from ..data import load_multimodal_dataset

    return load_multimodal_dataset(args.data or args.dataset, "train", num_examples=args.limit_examples,
                                   seed=args.seed)


def _make_multimodal_model(args: argparse.Namespace, config_kwargs: dict, dataset):
    """The multimodal preset for the dataset's modalities: each modality kind makes the specs of its columns from
    the data and the arguments (`Modality.specs_from_data`): an image modality per image column (its shape read off
    the data), a text modality per text column over one tokenizer (--tokenizer, byte-level BPE by default) trained
    on all of them, with room for --max-length tokens (by default twice the longest training caption's, at least
    MULTIMODAL_MIN_LENGTH)."""
    from .. import LatentEBMForMultimodalGeneration, LatentEBMMultimodalConfig
    from ..data import modality_kinds
    from ..modalities import modality

    if args.init_from:  # fine-tuning: the checkpoint's modalities and tokenizer; the data must fit them
        model = LatentEBMForMultimodalGeneration.from_pretrained(args.init_from)
        kept = [modality(spec["kind"]).max_length(spec) for spec in model.config.modalities.values()]
        _check_kept_max_length(args, [length for length in kept if length is not None])
        return model
    kinds = modality_kinds(dataset)
    specs, tokenizers = {}, {}
    for kind in dict.fromkeys(kinds.values()):
        made, tokenizer = modality(kind).specs_from_data(dataset, [name for name in kinds if kinds[name] == kind],
                                                         args)
        specs.update(made)
        if tokenizer is not None:
            tokenizers[kind] = tokenizer
    if len(tokenizers) > 1:
        raise ValueError(f"the modality kinds {sorted(tokenizers)} each need a tokenizer; a model holds one")
    model = LatentEBMForMultimodalGeneration(LatentEBMMultimodalConfig(modalities={name: specs[name] for name in kinds},
                                                                       **config_kwargs))
    if tokenizers:
        model.set_tokenizer(next(iter(tokenizers.values())))
    return model


# Molecules the smiles task trains on by default: a seeded subset of MOSES's training split (its properties are
# computed once and cached), small enough for a CPU run of minutes.
MOSES_DEFAULT_SUBSET = 20_000
MOLECULE_MIN_LENGTH = 80  # the molecule config's max_length default: MOSES's longest SMILES has 57 tokens


def _load_molecules(args: argparse.Namespace):
    """`--data` (a .smi / .txt / .csv file of SMILES; empty and invalid lines are counted and skipped) or a MOSES
    training subset of `--limit-examples` (default `MOSES_DEFAULT_SUBSET`) molecules."""
    from ..data.molecules import load_moses, load_smiles_dataset

    if not args.data:
        return load_moses("train", limit=args.limit_examples or MOSES_DEFAULT_SUBSET, seed=args.seed)
    dataset, report = load_smiles_dataset(args.data, column=args.smiles_column)
    examples = ", ".join(map(repr, report["invalid_examples"]))
    print(f"{args.data}: {len(dataset)} molecules; skipped {report['empty_skipped']} empty and "
          f"{report['invalid_skipped']} invalid line(s){': ' + examples if examples else ''}", file=sys.stderr)
    if len(dataset) == 0:
        raise ValueError(f"{args.data} holds no valid molecule")
    return dataset.select(range(min(args.limit_examples, len(dataset)))) if args.limit_examples else dataset


def _make_molecule_model(args: argparse.Namespace, config_kwargs: dict, dataset):
    """The molecule preset: a tokenizer of the representation's kind trained on the molecules, max_length from
    --max-length (or room for the longest molecule, at least MOLECULE_MIN_LENGTH), and with --properties a property
    head standardised by the data's means and stds."""
    import statistics

    from .. import LatentEBMForMoleculeGeneration, LatentEBMMoleculeConfig
    from ..tokenization import train_tokenizer

    if args.init_from:  # fine-tuning keeps the checkpoint's tokenizer and property scaling
        model = LatentEBMForMoleculeGeneration.from_pretrained(args.init_from)
        model._require_tokenizer()
        _check_kept_max_length(args, [model.config.max_length])
        return model
    names = [name.strip() for name in (args.properties or "").split(",") if name.strip()]
    if names:
        config_kwargs = {**config_kwargs, "property_names": names,
                         "property_means": [statistics.fmean(dataset[name]) for name in names if name in
                                            dataset.column_names],
                         "property_stds": [statistics.pstdev(dataset[name]) or 1.0 for name in names
                                           if name in dataset.column_names]}
    representation = config_kwargs.get("representation", "smiles")
    probe = LatentEBMMoleculeConfig(**config_kwargs)  # checks the settings (property names) before any training
    strings = list(dataset["smiles"])
    if representation == "selfies":
        from ..data.molecules import to_selfies

        strings = to_selfies(strings)
    tokenizer = train_tokenizer(strings, kind=representation, min_frequency=1, max_length=10_000)
    longest = max(len(ids) for ids in tokenizer(strings)["input_ids"])
    max_length = args.max_length or max(probe.max_length, longest)
    if longest > max_length:
        raise ValueError(f"--max-length {max_length} is shorter than the longest molecule ({longest} tokens with "
                         "<bos>/<eos>): raise it, or leave it out to fit the data")
    tokenizer.model_max_length = max_length
    config = LatentEBMMoleculeConfig(**{**config_kwargs, "max_length": max_length}, vocab_size=len(tokenizer),
                                     pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                     eos_token_id=tokenizer.eos_token_id, unk_token_id=tokenizer.unk_token_id)
    model = LatentEBMForMoleculeGeneration(config)
    model.set_tokenizer(tokenizer)
    return model


def _same_dataset(args: argparse.Namespace, model, dataset):
    return dataset


def _prepared_dataset(args: argparse.Namespace, model, dataset):
    return model.prepare_dataset(dataset)


register_task("image", Task(load_data=_load_images, make_model=_make_image_model, make_dataset=_same_dataset,
                            dataset_name=lambda args: args.dataset, model_type="latent_ebm",
                            default_dataset="mnist"))
register_task("hierarchical", Task(load_data=_load_images, make_model=_make_hierarchical_model,
                                   make_dataset=_same_dataset, dataset_name=lambda args: args.dataset,
                                   model_type="latent_ebm", default_dataset="mnist"))
register_task("text", Task(load_data=_load_texts, make_model=_make_text_model, make_dataset=_text_dataset,
                           dataset_name=lambda args: args.data or "kjv", model_type="latent_ebm_text"))
register_task("smiles", Task(load_data=_load_molecules, make_model=_make_molecule_model,
                             make_dataset=_prepared_dataset, dataset_name=lambda args: args.data or "moses",
                             model_type="latent_ebm_molecule"))
register_task("ssl", Task(load_data=_load_ssl_data, make_model=_make_ssl_model, make_dataset=_ssl_dataset,
                          dataset_name=lambda args: args.data or args.dataset, after_training=_fit_class_priors,
                          model_type="latent_ebm_classification", default_dataset="mnist", labelled_batches=True))
register_task("multimodal", Task(load_data=_load_multimodal, make_model=_make_multimodal_model,
                                 make_dataset=_prepared_dataset, dataset_name=lambda args: args.data or args.dataset,
                                 model_type="latent_ebm_multimodal", default_dataset="polymnist"))

__all__ = ["TASKS", "Task", "register_task", "MULTIMODAL_MIN_LENGTH"]
