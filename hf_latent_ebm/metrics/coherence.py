"""Cross-modal coherence of multimodal generative models, scored by per-modality classifiers the library trains.

Coherence (Shi et al. 2019, MMVAE; Sutter et al. 2021, MoPoE) asks whether the modalities a model generates mean the
same thing: a classifier per modality maps each sample to a label in one shared label space (the digit of PolyMNIST,
say), and
- joint coherence is the fraction of jointly generated samples whose modalities all get the same label;
- cross (conditional) coherence is, for each subset S of modalities given and each target modality t not in S, the
  accuracy of the classifier on t's generations against the true labels of the conditioning examples.

The model-level functions code against this generation contract:
    model.config.modalities                      ordered {name: spec}, spec["kind"] a registered modality kind
    model.generate(num_samples=N, generator=g)   -> {name: values} for every modality
    model.generate(conditioned_on={name: values}, targets=[names], generator=g) -> {target: values}
with values a uint8 (N, C, H, W) tensor for an image modality and a list of N strings for a text modality (what the
kind's `hf_latent_ebm.modalities.Modality.count` takes).

The classifiers, their training, saving and loading are in `coherence_classifiers`; their names are re-exported here.
"""

import itertools
from collections.abc import Mapping, Sequence

import torch

from ..modalities import modality
from .coherence_classifiers import (ImageClassifier, ModalityClassifier, ModalityClassifiers, TextClassifier,
                                    _label_vector, _num_values, accuracy, text_words, train_modality_classifier)

__all__ = ["joint_agreement", "accuracy", "joint_coherence", "cross_coherence", "subset_key", "SUBSET_MODES",
           "mean_pairwise_distance", "cross_modal_diversity", "ModalityClassifier", "ImageClassifier",
           "TextClassifier", "ModalityClassifiers", "train_modality_classifier", "text_words"]

SUBSET_MODES = ("leave_one_out", "single", "all")


# ---- pure scores ------------------------------------------------------------------------------------------------
def _prediction_matrix(predictions) -> torch.Tensor:
    """{modality: (N,) labels} or an (N, M) table (one row per sample, one column per modality) -> (N, M) long."""
    if isinstance(predictions, Mapping):
        if not predictions:
            raise ValueError("predictions must hold at least one modality, got an empty dict")
        columns = {name: _label_vector(labels, f"predictions[{name!r}]") for name, labels in predictions.items()}
        lengths = {name: len(labels) for name, labels in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"every modality needs one prediction per sample, got lengths {lengths}")
        matrix = torch.stack(list(columns.values()), dim=1)
    else:
        matrix = torch.as_tensor(predictions)
        if matrix.dim() != 2 or matrix.is_floating_point() or matrix.is_complex() or matrix.dtype == torch.bool:
            raise ValueError(f"predictions must be a dict of label vectors or an (N, M) integer table, got dtype "
                             f"{matrix.dtype} and shape {tuple(matrix.shape)}")
        matrix = matrix.long().cpu()
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"predictions are empty: {matrix.shape[0]} samples x {matrix.shape[1]} modalities")
    return matrix


def joint_agreement(predictions, references=None) -> float:
    """
    Fraction of samples whose predicted labels agree across all modalities.

    Args:
        predictions (`dict[str, torch.LongTensor]` or `(N, M)` integer tensor):
            Predicted labels, one (N,) vector per modality, or a table with one row per sample.
        references (`torch.LongTensor` of shape `(N,)`, *optional*):
            True labels; when given, a sample counts only if every modality's label also equals its reference.
    """
    matrix = _prediction_matrix(predictions)
    agree = (matrix == matrix[:, :1]).all(dim=1)
    if references is not None:
        references = _label_vector(references, "references")
        if len(references) != len(matrix):
            raise ValueError(f"{len(matrix)} predictions but {len(references)} references")
        agree &= matrix[:, 0] == references
    return float(agree.double().mean())


# ---- model-level coherence ------------------------------------------------------------------------------------
def _as_classifiers(classifiers) -> ModalityClassifiers:
    return classifiers if isinstance(classifiers, ModalityClassifiers) else ModalityClassifiers(classifiers)


def _checked_modalities(model, classifiers: ModalityClassifiers, names) -> list[str]:
    """The model's modality names among `names`, each with a classifier of its kind, all over one label space."""
    modalities = model.config.modalities
    unknown = [name for name in names if name not in modalities]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; the model has {list(modalities)}")
    missing = [name for name in names if name not in classifiers]
    if missing:
        raise ValueError(f"no classifier for modalities {missing}; the classifiers cover {classifiers.names}")
    for name in names:
        if classifiers.kind(name) != modalities[name]["kind"]:
            raise ValueError(f"modality {name!r} is {modalities[name]['kind']!r} but its classifier is "
                             f"{classifiers.kind(name)!r}")
    num_labels = {name: classifiers[name].num_labels for name in names}
    if len(set(num_labels.values())) > 1:
        raise ValueError(f"coherence needs one label space shared by all classifiers, got num_labels {num_labels}")
    return [name for name in modalities if name in set(names)]


def _check_generated(outputs, names, count: int, kind_of) -> None:
    if not isinstance(outputs, Mapping):
        raise ValueError(f"model.generate must return a dict of modality values, got {type(outputs).__name__}")
    for name in names:
        if name not in outputs:
            raise ValueError(f"model.generate returned {list(outputs)}, missing modality {name!r}")
        got = _num_values(outputs[name], kind_of(name))
        if got != count:
            raise ValueError(f"model.generate returned {got} values of {name!r}, expected {count}")


@torch.no_grad()
def joint_coherence(model, classifiers, num_samples: int, generator: torch.Generator | None = None,
                    batch_size: int = 100, modalities: Sequence[str] | None = None) -> float:
    """
    Fraction of jointly generated samples on which every modality's classifier predicts the same label.

    Args:
        model: A multimodal model with `config.modalities` and `generate(num_samples=, generator=)`.
        classifiers (`ModalityClassifiers` or `dict[str, ModalityClassifier]`): One per scored modality.
        num_samples (`int`): Samples to generate, in batches of `batch_size`.
        generator (`torch.Generator`, *optional*): Passed to every `generate` call.
        batch_size (`int`, defaults to 100): Samples per `generate` call.
        modalities (`Sequence[str]`, *optional*): Score only these; defaults to all of the model's modalities.
    """
    classifiers = _as_classifiers(classifiers)
    names = _checked_modalities(model, classifiers, list(model.config.modalities) if modalities is None
                                else list(modalities))
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be >= 1, got {num_samples} and {batch_size}")
    predictions = {name: [] for name in names}
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        outputs = model.generate(num_samples=count, generator=generator)
        _check_generated(outputs, names, count, classifiers.kind)
        for name in names:
            predictions[name].append(classifiers.predict(name, outputs[name]))
    return joint_agreement({name: torch.cat(parts) for name, parts in predictions.items()})


def subset_key(subset: Sequence[str], target: str) -> str:
    """The `by_subset` key of conditioning on `subset` to generate `target`: "m0,m2->m1"."""
    return f"{','.join(subset)}->{target}"


def _conditioning_subsets(subsets, available: list[str], order: list[str]) -> tuple[list[tuple[str, ...]], bool]:
    """The subsets to condition on, each in the model's modality order, and whether the caller listed them."""
    if isinstance(subsets, str):
        if subsets not in SUBSET_MODES:
            raise ValueError(f"subsets must be one of {SUBSET_MODES} or a list of modality lists, got {subsets!r}")
        # Leave-one-out with a single given modality can only condition on that one.
        sizes = {"single": [1], "leave_one_out": [max(1, len(available) - 1)],
                 "all": range(1, len(available) + 1)}[subsets]
        return [combination for size in sizes if size >= 1
                for combination in itertools.combinations(available, size)], False
    listed = []
    for subset in subsets:
        names = subset.split(",") if isinstance(subset, str) else list(subset)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"each conditioning subset must be a non-empty list of distinct modalities, got "
                             f"{subset!r}")
        missing = [name for name in names if name not in available]
        if missing:
            raise ValueError(f"subset {subset!r} names modalities {missing} that conditioned_on does not provide "
                             f"(it has {available})")
        listed.append(tuple(sorted(names, key=order.index)))
    if not listed:
        raise ValueError("subsets is an empty list")
    return listed, True


@torch.no_grad()
def cross_coherence(model, classifiers, conditioned_on: Mapping, labels, targets: Sequence[str] | None = None,
                    subsets: str | Sequence = "leave_one_out", generator: torch.Generator | None = None,
                    batch_size: int = 100) -> dict:
    """
    Conditional coherence: for each subset S of the given modalities and each target modality t not in S, generate t
    from the test examples' S, classify it, and compare with the examples' true labels.

    Args:
        model: A multimodal model with `config.modalities` and `generate(conditioned_on=, targets=, generator=)`.
        classifiers (`ModalityClassifiers` or `dict[str, ModalityClassifier]`): One per target modality.
        conditioned_on (`dict[str, values]`): Test examples, N per modality given (aligned across modalities).
        labels (`torch.LongTensor` of shape `(N,)`): Their shared true labels.
        targets (`Sequence[str]`, *optional*): Modalities to generate; defaults to all of the model's modalities.
        subsets (defaults to "leave_one_out"): "leave_one_out" (all but one of the given modalities), "single" (each
            one alone), "all" (every non-empty subset), or a list of subsets (lists of names or "m0,m2" strings).
        generator (`torch.Generator`, *optional*): Passed to every `generate` call.
        batch_size (`int`, defaults to 100): Examples per `generate` call.

    Returns:
        `dict` with "by_subset" ({"m0,m2->m1": accuracy} for each subset and target), "mean" (over all of them) and
        "mean_by_size" ({|S|: mean accuracy over the pairs conditioning on |S| modalities}, int keys).
    """
    classifiers = _as_classifiers(classifiers)
    modalities = model.config.modalities
    order = list(modalities)
    if not isinstance(conditioned_on, Mapping) or not conditioned_on:
        raise ValueError("conditioned_on must be a non-empty dict {modality: values}")
    unknown = [name for name in conditioned_on if name not in modalities]
    if unknown:
        raise ValueError(f"conditioned_on has unknown modalities {unknown}; the model has {order}")
    labels = _label_vector(labels, "labels")
    counts = {name: _num_values(values, modalities[name]["kind"]) for name, values in conditioned_on.items()}
    if any(count != len(labels) for count in counts.values()):
        raise ValueError(f"every conditioning modality needs one value per label ({len(labels)}), got {counts}")
    if len(labels) == 0 or batch_size < 1:
        raise ValueError(f"need at least one example and batch_size >= 1, got {len(labels)} and {batch_size}")
    targets = _checked_modalities(model, classifiers, order if targets is None else list(targets))
    available = [name for name in order if name in conditioned_on]
    subset_list, listed = _conditioning_subsets(subsets, available, order)

    by_subset, sizes = {}, {}
    for subset in subset_list:
        subset_targets = [target for target in targets if target not in subset]
        if not subset_targets:
            if listed:
                raise ValueError(f"subset {list(subset)} leaves no target to generate (targets are {targets})")
            continue
        predictions = {target: [] for target in subset_targets}
        for start in range(0, len(labels), batch_size):
            stop = min(start + batch_size, len(labels))
            outputs = model.generate(conditioned_on={name: conditioned_on[name][start:stop] for name in subset},
                                     targets=subset_targets, generator=generator)
            _check_generated(outputs, subset_targets, stop - start, classifiers.kind)
            for target in subset_targets:
                predictions[target].append(classifiers.predict(target, outputs[target]))
        for target in subset_targets:
            key = subset_key(subset, target)
            by_subset[key] = accuracy(torch.cat(predictions[target]), labels)
            sizes[key] = len(subset)
    if not by_subset:
        raise ValueError(f"no (subset, target) pair to score: subsets={subsets!r}, given modalities {available}, "
                         f"targets {targets}")
    mean_by_size = {}
    for size in sorted(set(sizes.values())):
        scores = [score for key, score in by_subset.items() if sizes[key] == size]
        mean_by_size[size] = sum(scores) / len(scores)
    return {"by_subset": by_subset, "mean": sum(by_subset.values()) / len(by_subset), "mean_by_size": mean_by_size}


# ---- diversity ----------------------------------------------------------------------------------------------------
def mean_pairwise_distance(images) -> float:
    """How different a set of images are from each other: the mean, over pairs, of their root-mean-square pixel
    difference with pixels scaled to [0, 1] (0 for identical images, about 0.3 for real MNIST digits of one class)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) < 2:
        raise ValueError("mean_pairwise_distance needs a uint8 image tensor (N, C, H, W) with N >= 2, got "
                         f"{type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}")
    flat = images.flatten(1).double() / 255
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5
    count = len(flat)
    return float(distances.sum() / (count * (count - 1)))


def _repeat_values(values, times: int):
    if isinstance(values, torch.Tensor):
        return values.repeat_interleave(times, dim=0)
    return [value for value in values for _ in range(times)]


@torch.no_grad()
def cross_modal_diversity(model, conditioned_on: Mapping, labels, reference: Mapping, targets: Sequence[str] | None = None,
                          num_draws: int = 10, generator: torch.Generator | None = None) -> dict:
    """
    Within-condition diversity of cross-modal generation: does one condition give different images, as different
    as real images of its class are? For each conditioning example, `num_draws` images of every target are
    generated from it; their `mean_pairwise_distance` is compared with that of `num_draws` real images of the
    example's class, drawn from `reference`. A model that decodes one class average per condition scores near 0;
    one whose draws vary like the data, near 1.

    Args:
        model: A multimodal model (see the module's generation contract).
        conditioned_on (`dict[str, values]`): The conditioning examples, aligned across modalities.
        labels (`torch.LongTensor` of shape `(N,)`): Their classes.
        reference (`dict[str, tuple[images, labels]]`): Real uint8 images (M, C, H, W) and their labels for each
            target; every class in `labels` needs `num_draws` of them.
        targets (`Sequence[str]`, *optional*): Image modalities to generate; defaults to the reference's.
        num_draws (`int`, defaults to 10): Draws per condition (>= 2).
        generator (`torch.Generator`, *optional*): Passed to `generate` and used to pick the real images.

    Returns:
        `dict` with "by_target" ({target: {"generated", "real", "ratio"}}, distances averaged over conditions) and
        "ratio" (the mean of the targets' ratios).
    """
    labels = _label_vector(labels, "labels")
    if not isinstance(num_draws, int) or num_draws < 2:
        raise ValueError(f"num_draws must be an int >= 2, got {num_draws!r}")
    targets = list(reference) if targets is None else list(targets)
    modalities = model.config.modalities
    for target in targets:
        if target not in modalities or not modality(modalities[target]["kind"]).measures_diversity:
            raise ValueError(f"diversity is measured on image modalities of the model; {target!r} is not one")
        if target not in reference or target in conditioned_on:
            raise ValueError(f"target {target!r} needs real images in `reference` and must not be given")
    counts = {name: _num_values(values, modalities[name]["kind"]) for name, values in conditioned_on.items()}
    if not counts or any(count != len(labels) for count in counts.values()):
        raise ValueError(f"every conditioning modality needs one value per label ({len(labels)}), got {counts}")
    outputs = model.generate(conditioned_on={name: _repeat_values(values, num_draws)
                                             for name, values in conditioned_on.items()},
                             targets=targets, generator=generator)
    by_target = {}
    for target in targets:
        images, real_labels = reference[target]
        real_labels = _label_vector(real_labels, "reference labels")
        draws = outputs[target].reshape(len(labels), num_draws, *outputs[target].shape[1:])
        generated, real = [], []
        for index, label in enumerate(labels.tolist()):
            pool = torch.nonzero(real_labels == label).flatten()
            if len(pool) < num_draws:
                raise ValueError(f"reference for {target!r} has {len(pool)} images of class {label}, fewer than "
                                 f"num_draws={num_draws}")
            chosen = pool[torch.randperm(len(pool), generator=_cpu_generator(generator))[:num_draws]]
            generated.append(mean_pairwise_distance(draws[index]))
            real.append(mean_pairwise_distance(images[chosen]))
        generated_mean, real_mean = sum(generated) / len(generated), sum(real) / len(real)
        by_target[target] = {"generated": generated_mean, "real": real_mean, "ratio": generated_mean / real_mean}
    return {"by_target": by_target, "ratio": sum(entry["ratio"] for entry in by_target.values()) / len(by_target)}


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """`randperm` on CPU indices needs a CPU generator: a CUDA one seeds a CPU one from its next draw."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device).item())
    return torch.Generator().manual_seed(seed)
