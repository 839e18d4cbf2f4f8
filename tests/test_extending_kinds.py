"""Extending the library from outside the package, part two: a new model kind (a config and a head, one
`register_model_kind` call) gets the Auto classes, a model card with its template, pipeline tag and tags, an
`hf-latent-ebm train --task` and `hf-latent-ebm sample`; a new modality kind (one `Modality` subclass, one
`register_modality` call) is read from data, trained through the CLI's multimodal task, encoded, generated, drawn
in the sample grids and scored by coherence. No file of hf_latent_ebm is edited for either (docs/extending.md)."""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from torch import nn
from transformers import AutoConfig, AutoModel

from hf_latent_ebm import (MODALITIES, MODEL_KINDS, LatentEBMForMultimodalGeneration, LatentEBMModel,
                           LatentEBMModelConfig, LatentEBMMultimodalConfig, Modality, Task, image_modality,
                           register_modality, register_model_kind)
from hf_latent_ebm.cli import TASKS, main
from hf_latent_ebm.data import modality_kinds
from hf_latent_ebm.metrics.coherence import ModalityClassifiers, joint_coherence
from hf_latent_ebm.modalities import ModalityClassifier

from .test_multimodal import TINY

TEMPLATE = Path(__file__).parent / "data" / "toy_vectors.md.jinja"


# ---- a model kind ---------------------------------------------------------------------------------------------------
class ToyVectorConfig(LatentEBMModelConfig):
    model_type = "toy_vectors"


class ToyVectorModel(LatentEBMModel):
    """The generic model over 2-d vectors, as a kind of its own that writes its samples as CSV rows."""

    config_class = ToyVectorConfig
    sample_file_suffix = ".csv"

    def write_samples(self, path, num_samples: int, generator: torch.Generator | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.sample(num_samples, generator).tolist()
        path.write_text("".join(",".join(f"{value:.4f}" for value in row) + "\n" for row in rows))
        return path


def blobs(args):
    """Two clusters of 2-d points."""
    generator = torch.Generator().manual_seed(args.seed)
    centres = torch.tensor([[1.5, -1.0]]) * (torch.arange(64) % 2)[:, None]
    points = centres + 0.2 * torch.randn(64, 2, generator=generator)
    return datasets.Dataset.from_dict({"observations": points.numpy()})


TOY_TASK = Task(load_data=blobs,
                make_model=lambda args, config_kwargs, data: ToyVectorModel(ToyVectorConfig(**config_kwargs)),
                make_dataset=lambda args, model, data: data, dataset_name=lambda args: "toy-blobs")
register_model_kind(ToyVectorModel, TEMPLATE, pipeline_tag="feature-extraction", tags=("toy", "hf-latent-ebm"),
                    tasks={"toy-vectors": TOY_TASK})


def test_a_registered_model_kind_gets_auto_classes_a_card_and_a_cli_task(tmp_path, capsys):
    kind = MODEL_KINDS["toy_vectors"]
    assert kind.config_class is ToyVectorConfig and kind.tasks == ["toy-vectors"] and "toy-vectors" in TASKS
    assert kind.sample_file_suffix == ".csv"
    assert isinstance(AutoConfig.for_model("toy_vectors"), ToyVectorConfig)
    overrides = json.dumps({key: TINY[key] for key in ("latent_dim", "sampler_config")})
    run = tmp_path / "run"
    main(["train", "--task", "toy-vectors", "--output-dir", str(run), "--max-steps", "2", "--batch-size", "16",
          "--sample-every", "0", "--checkpoint-every", "0", "--config-overrides", overrides])
    assert json.loads((run / "train_results.json").read_text())["dataset"] == "toy-blobs"
    card = ModelCard.load(run / "README.md")
    assert card.data.pipeline_tag == "feature-extraction" and card.data.tags == ["toy", "hf-latent-ebm"]
    assert "A toy vector model registered from outside hf-latent-ebm" in card.text
    assert "hf-latent-ebm train --task toy-vectors" in card.text
    model = AutoModel.from_pretrained(run)
    assert type(model) is ToyVectorModel and model.config.latent_dim == TINY["latent_dim"]
    capsys.readouterr()
    main(["sample", "--model", str(run), "--num-samples", "3", "--output", str(tmp_path / "samples.csv")])
    rows = (tmp_path / "samples.csv").read_text().splitlines()
    assert len(rows) == 3 and all(len(row.split(",")) == 2 for row in rows)
    # A kind is declared once: another head for the same model_type is refused.
    with pytest.raises(ValueError, match="already registered to ToyVectorModel"):
        register_model_kind(type("OtherHead", (ToyVectorModel,), {}), TEMPLATE)


def test_every_built_in_model_kind_is_declared_once():
    assert set(MODEL_KINDS) >= {"latent_ebm", "latent_ebm_text", "latent_ebm_model", "latent_ebm_classification",
                                "latent_ebm_multimodal", "chet"}
    for model_type, kind in MODEL_KINDS.items():
        assert kind.template_path.is_file(), model_type
        assert AutoModel._model_mapping[kind.config_class] is kind.model_class
    assert {name: TASKS[name].model_type for name in ("image", "text", "ssl", "multimodal")} == {
        "image": "latent_ebm", "text": "latent_ebm_text", "ssl": "latent_ebm_classification",
        "multimodal": "latent_ebm_multimodal"}
    assert MODEL_KINDS["latent_ebm_classification"].pipeline_tag_for({"decoder_type": "tabular"}) == \
        "tabular-classification"


# ---- a modality kind ------------------------------------------------------------------------------------------------
class VectorClassifier(ModalityClassifier):
    """A linear classifier of float vectors."""

    kind = "vector"

    def __init__(self, num_labels: int, dim: int):
        super().__init__(num_labels)
        self.dim = dim
        self.linear = nn.Linear(dim, num_labels)

    def check_values(self, values) -> None:
        if not isinstance(values, torch.Tensor) or not values.is_floating_point() or values.dim() != 2 \
                or values.shape[1] != self.dim:
            raise ValueError(f"vectors must be a float tensor (N, {self.dim})")

    def prepare(self, values):
        return values.to(self.device)

    def logits(self, inputs):
        return self.linear(inputs)

    def config_dict(self) -> dict:
        return {"kind": self.kind, "num_labels": self.num_labels, "dim": self.dim}

    @classmethod
    def from_config_dict(cls, config: dict) -> "VectorClassifier":
        return cls(config["num_labels"], config["dim"])


def vector_spec(dim: int) -> dict:
    parts = {"observation_dim": dim, "hidden_dim": 16, "num_hidden_layers": 1}
    return {"kind": "vector", "decoder_type": "mlp", "decoder_config": {**parts, "sigma": 0.3},
            "encoder_type": "mlp", "encoder_config": parts}


class VectorModality(Modality):
    """Real vectors: a `List(Value("float32"), length=D)` column, the Gaussian MLP decoder and the MLP encoder."""

    feature_description = "List(Value('float32'), length=D) for vectors"
    classifier_class = VectorClassifier
    classifier_epochs = 30

    def matches_feature(self, name, feature) -> bool:
        return isinstance(feature, datasets.List) and feature.feature == datasets.Value("float32") \
            and feature.length > 0

    def encode(self, name, values, decoder, tokenizer=None):
        present = np.array([value is not None for value in values], bool)
        arrays = np.zeros((len(values), decoder.observation_dim), np.float32)
        for row in np.flatnonzero(present):
            arrays[row] = np.asarray(values[row], np.float32)
        return arrays, present

    def stored_feature(self, decoder):
        return datasets.List(datasets.Value("float32"), length=decoder.observation_dim)

    def display(self, values):
        return [", ".join(f"{value:.2f}" for value in row) for row in torch.as_tensor(values).tolist()]

    def specs_from_data(self, dataset, names, options):
        return {name: vector_spec(dataset.features[name].length) for name in names}, None

    def count(self, values) -> int:
        return len(values)

    def build_classifier(self, values, num_labels: int) -> VectorClassifier:
        return VectorClassifier(num_labels, values.shape[1])


register_modality("vector", VectorModality)


def image_and_point_data(count: int = 24):
    """A digit-like square image and a 2-d point per example, both showing the class (0 or 1); some points missing."""
    labels = np.arange(count) % 2
    images = np.zeros((count, 1, 28, 28), np.uint8)
    for index, label in enumerate(labels):
        images[index, 0, 4 + 12 * label:12 + 12 * label, 8:20] = 255
    points = [None if index % 5 == 4 else [2.0 * label - 1.0, 0.5] for index, label in enumerate(labels)]
    features = datasets.Features({"image": datasets.Array3D(shape=(1, 28, 28), dtype="uint8"),
                                  "point": datasets.List(datasets.Value("float32"), length=2),
                                  "label": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": images, "point": points, "label": labels}, features=features)


def test_a_registered_modality_kind_trains_generates_draws_and_scores(tmp_path, capsys):
    assert "vector" in MODALITIES
    data = image_and_point_data()
    assert modality_kinds(data) == {"image": "image", "point": "vector"}
    data.save_to_disk(str(tmp_path / "data"))
    # The CLI's multimodal task makes each kind's specs from the data, trains, saves; `sample` draws its grids.
    main(["train", "--task", "multimodal", "--data", str(tmp_path / "data"), "--output-dir", str(tmp_path / "run"),
          "--batch-size", "8", "--max-steps", "2", "--sample-every", "0", "--checkpoint-every", "0",
          "--config-overrides", json.dumps(TINY)])
    model = AutoModel.from_pretrained(tmp_path / "run").eval()
    assert model.config.kinds == {"image": "image", "point": "vector"} and model.tokenizer is None
    assert model.config.modalities["point"] == vector_spec(2)
    main(["sample", "--model", str(tmp_path / "run"), "--num-samples", "3", "--output", str(tmp_path / "grid.png"),
          "--data", str(tmp_path / "data"), "--num-draws", "2"])
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "grid_from_point.png").is_file()
    # Raw values in, the stored form, generation from a subset of modalities.
    batch = model.prepare_inputs({"point": [[1.0, 0.5], None], "image": [data[0]["image"], data[1]["image"]]})
    assert batch["point"].dtype == torch.float32 and batch["modality_mask"].tolist() == [[True, True], [True, False]]
    generator = torch.Generator().manual_seed(0)
    generated = model.generate(conditioned_on={"point": [[1.0, 0.5], [-1.0, 0.5]]}, generator=generator)
    assert generated["image"].shape == (2, 1, 28, 28) and generated["image"].dtype == torch.uint8
    prepared = model.prepare_dataset(data)
    assert prepared.features["point"] == datasets.List(datasets.Value("float32"), length=2)
    # Coherence scores the new kind with its own classifier (saved and loaded by its kind).
    points = torch.tensor([[2.0 * label - 1.0, 0.5] for label in data["label"]])
    classifiers = ModalityClassifiers.train({"point": ("vector", points, torch.tensor(data["label"])),
                                             "image": ("image", torch.tensor(np.asarray(data["image"], np.uint8)),
                                                       torch.tensor(data["label"]))}, epochs={"image": 1}, batch_size=8)
    classifiers.save(tmp_path / "classifiers")
    loaded = ModalityClassifiers.load(tmp_path / "classifiers")
    assert isinstance(loaded["point"], VectorClassifier)
    assert loaded.accuracy("point", points, torch.tensor(data["label"])) == 1.0
    assert 0.0 <= joint_coherence(model, loaded, num_samples=4, generator=generator) <= 1.0
    # The model's config accepts the kind by name; an unregistered kind is refused with the registered ones named.
    with pytest.raises(ValueError, match=r"kind must be one of the registered modality kinds \[.*'vector'.*\], "
                                         r"got 'sound'"):
        LatentEBMMultimodalConfig(modalities={"a": image_modality(), "b": {**vector_spec(2), "kind": "sound"}})
    assert isinstance(LatentEBMForMultimodalGeneration(LatentEBMMultimodalConfig(
        modalities={"a": image_modality(num_channels=1, base_channels=4), "b": vector_spec(3)}, **TINY)),
        LatentEBMForMultimodalGeneration)
