"""The per-modality classifiers that coherence is scored with (`hf_latent_ebm.metrics.coherence`), over one shared
label space: their seeded training and `ModalityClassifiers` to train, save and load one per modality. Each modality
kind brings its classifier (`Modality.build_classifier`; an image CNN and a bag-of-words text model, in
`hf_latent_ebm.modalities`, re-exported here). The label-vector and value checks and `accuracy` live here because
the classifiers' own accuracy uses them as much as the scores do.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..modalities import ImageClassifier, ModalityClassifier, TextClassifier, modality, text_words

WEIGHTS_NAME = "classifiers.safetensors"
CONFIG_NAME = "classifiers.json"
FORMAT_VERSION = 1


# ---- labels and values ------------------------------------------------------------------------------------------
def _label_vector(values, what: str) -> torch.Tensor:
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.dtype in (torch.bool,) or values.is_floating_point() or values.is_complex():
        raise ValueError(f"{what} must be a 1-d integer tensor of labels, got dtype {values.dtype} and shape "
                         f"{tuple(values.shape)}")
    return values.long().cpu()


def _num_values(values, kind: str) -> int:
    return modality(kind).count(values)


def accuracy(predictions, labels) -> float:
    """Fraction of `predictions` equal to `labels`, both 1-d integer label vectors of the same length."""
    predictions, labels = _label_vector(predictions, "predictions"), _label_vector(labels, "labels")
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("accuracy of zero examples is undefined")
    return float((predictions == labels).double().mean())


def train_modality_classifier(kind: str, values, labels, num_labels: int, *, epochs: int | None = None,
                              batch_size: int = 128, seed: int = 0, learning_rate: float | None = None,
                              device: str | torch.device = "cpu", progress: bool = False) -> ModalityClassifier:
    """
    Train a classifier of one modality's values (Adam with a one-cycle learning rate), seeded and CPU-fast.

    Args:
        kind (`str`): A registered modality kind: "image" (uint8 (N, C, H, W) tensor, H = W), "text" (list of N
            strings), ...
        values: The training examples.
        labels (`torch.LongTensor` of shape `(N,)`): Their classes, in [0, num_labels).
        num_labels (`int`): Number of classes.
        epochs (`int`, *optional*): Passes over the data; defaults to the kind's `classifier_epochs`: 3 for images
            (~99.1% on MNIST) and 20 for text.
        batch_size (`int`, defaults to 128): Examples per step.
        seed (`int`, defaults to 0): Seeds the initialisation, the shuffling and dropout; the global RNG is untouched.
        learning_rate (`float`, *optional*): Peak learning rate; defaults to the kind's `classifier_learning_rate`:
            3e-3 for images and 1e-2 for text.
        device (defaults to "cpu"): Where to train; the classifier stays there.
        progress (`bool`, defaults to False): Show a tqdm bar over steps.

    Returns:
        The trained classifier, in eval mode.
    """
    handler = modality(kind)
    labels = _label_vector(labels, "labels")
    total = handler.count(values)
    if total != len(labels):
        raise ValueError(f"{total} {kind} examples but {len(labels)} labels")
    if total == 0:
        raise ValueError("cannot train a classifier on zero examples")
    if num_labels < 2 or labels.min() < 0 or labels.max() >= num_labels:
        raise ValueError(f"labels must lie in [0, num_labels) with num_labels >= 2, got labels in "
                         f"[{int(labels.min())}, {int(labels.max())}] and num_labels={num_labels}")
    epochs = handler.classifier_epochs if epochs is None else epochs
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")

    device = torch.device(device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        classifier = handler.build_classifier(values, num_labels)
        classifier.check_values(values)
        classifier.to(device).train()
        batch_inputs = classifier.batch_source(values)
        steps_per_epoch = -(-total // batch_size)
        learning_rate = handler.classifier_learning_rate if learning_rate is None else learning_rate
        optimizer = torch.optim.Adam(classifier.parameters(), lr=learning_rate)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate,
                                                       total_steps=epochs * steps_per_epoch, pct_start=0.2)
        shuffle = torch.Generator().manual_seed(seed)
        with tqdm(total=epochs * steps_per_epoch, desc=f"training {kind} classifier", disable=not progress) as bar:
            for _ in range(epochs):
                order = torch.randperm(total, generator=shuffle)
                for start in range(0, total, batch_size):
                    indices = order[start:start + batch_size]
                    loss = F.cross_entropy(classifier.logits(batch_inputs(indices)),
                                           labels[indices].to(classifier.device))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    bar.update()
    return classifier.eval()


class ModalityClassifiers:
    """
    One trained classifier per modality, {name: classifier}, all over one shared label space.

    Save with `save(directory)` (weights in safetensors, kinds/shapes/vocabularies in JSON) and reload with
    `ModalityClassifiers.load(directory)`.
    """

    def __init__(self, classifiers: Mapping[str, ModalityClassifier]):
        for name, classifier in classifiers.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"modality names must be non-empty strings, got {name!r}")
            if not isinstance(classifier, ModalityClassifier):
                raise ValueError(f"classifier of {name!r} must be a ModalityClassifier, got "
                                 f"{type(classifier).__name__}")
        self.classifiers = dict(classifiers)

    def __getitem__(self, name: str) -> ModalityClassifier:
        if name not in self.classifiers:
            raise ValueError(f"no classifier for modality {name!r}; have {list(self.classifiers)}")
        return self.classifiers[name]

    def __contains__(self, name) -> bool:
        return name in self.classifiers

    def __iter__(self):
        return iter(self.classifiers)

    def __len__(self) -> int:
        return len(self.classifiers)

    @property
    def names(self) -> list[str]:
        return list(self.classifiers)

    def kind(self, name: str) -> str:
        return self[name].kind

    def predict(self, name: str, values, batch_size: int = 256) -> torch.LongTensor:
        """Predicted labels of modality `name`'s values, a (N,) LongTensor on the CPU."""
        return self[name].predict(values, batch_size)

    def accuracy(self, name: str, values, labels, batch_size: int = 256) -> float:
        classifier = self[name]
        labels = _label_vector(labels, "labels")
        if _num_values(values, classifier.kind) != len(labels):
            raise ValueError(f"{_num_values(values, classifier.kind)} {name!r} values but {len(labels)} labels")
        return accuracy(classifier.predict(values, batch_size), labels)

    @classmethod
    def train(cls, data: Mapping[str, tuple], num_labels: int | None = None, *, epochs: int | Mapping | None = None,
              batch_size: int = 128, seed: int = 0, device: str | torch.device = "cpu",
              progress: bool = False) -> "ModalityClassifiers":
        """
        Train one classifier per modality from {name: (kind, values, labels)}; `num_labels` defaults to one more
        than the largest label of any modality, and `epochs` may be one number or {name: epochs}.
        """
        if not data:
            raise ValueError("need at least one modality to train a classifier for")
        for name, entry in data.items():
            if not isinstance(entry, (tuple, list)) or len(entry) != 3:
                raise ValueError(f"data[{name!r}] must be a (kind, values, labels) tuple")
        if num_labels is None:
            num_labels = 1 + max((int(_label_vector(labels, f"labels of {name!r}").max())
                                  for name, (_, _, labels) in data.items() if len(labels)), default=0)
        classifiers = {}
        for name, (kind, values, labels) in data.items():
            modality_epochs = epochs.get(name) if isinstance(epochs, Mapping) else epochs
            classifiers[name] = train_modality_classifier(kind, values, labels, num_labels, epochs=modality_epochs,
                                                          batch_size=batch_size, seed=seed, device=device,
                                                          progress=progress)
        return cls(classifiers)

    def save(self, directory: str | os.PathLike) -> None:
        """Write classifiers.safetensors and classifiers.json into `directory`, each by an atomic rename."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"{name}.{key}": tensor.detach().cpu().contiguous()
                   for name, classifier in self.classifiers.items() for key, tensor in classifier.state_dict().items()}
        config = {"format_version": FORMAT_VERSION,
                  "modalities": {name: classifier.config_dict() for name, classifier in self.classifiers.items()}}
        weights_staging, config_staging = directory / f".{WEIGHTS_NAME}.tmp", directory / f".{CONFIG_NAME}.tmp"
        save_file(tensors, str(weights_staging), metadata={"format": "pt"})
        config_staging.write_text(json.dumps(config, indent=2))
        os.replace(weights_staging, directory / WEIGHTS_NAME)
        os.replace(config_staging, directory / CONFIG_NAME)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "ModalityClassifiers":
        from safetensors.torch import load_file

        directory = Path(directory)
        weights_path, config_path = directory / WEIGHTS_NAME, directory / CONFIG_NAME
        if not weights_path.exists() or not config_path.exists():
            raise ValueError(f"{directory} must hold {WEIGHTS_NAME} and {CONFIG_NAME} (written by "
                             "ModalityClassifiers.save)")
        config = json.loads(config_path.read_text())
        if config.get("format_version") != FORMAT_VERSION or not isinstance(config.get("modalities"), dict):
            raise ValueError(f"{config_path} is not a format-{FORMAT_VERSION} classifiers config")
        tensors = load_file(str(weights_path))
        classifiers = {}
        for name, classifier_config in config["modalities"].items():
            classifier_class = modality(classifier_config.get("kind")).classifier_class
            if classifier_class is None:
                raise ValueError(f"{config_path}: modality kind {classifier_config['kind']!r} has no classifier")
            classifier = classifier_class.from_config_dict(classifier_config)
            prefix = f"{name}."
            missing = [prefix + key for key in classifier.state_dict() if prefix + key not in tensors]
            if missing:
                raise ValueError(f"{weights_path} lacks the weights {missing} of modality {name!r}")
            classifier.load_state_dict({key: tensors[prefix + key] for key in classifier.state_dict()})
            classifiers[name] = classifier.to(device).eval()
        return cls(classifiers)


__all__ = ["ModalityClassifier", "ImageClassifier", "TextClassifier", "ModalityClassifiers", "text_words",
           "train_modality_classifier", "accuracy"]
