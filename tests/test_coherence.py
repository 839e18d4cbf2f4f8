"""Coherence metrics: the modality classifiers, the pure scores, the evaluate module, and the generation contract with
a fake multimodal model (`config.modalities` + `generate(num_samples=...)` / `generate(conditioned_on=, targets=)`)."""

import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch

from hf_latent_ebm.metrics.coherence import (
    ImageClassifier,
    ModalityClassifiers,
    TextClassifier,
    accuracy,
    cross_coherence,
    cross_modal_diversity,
    joint_agreement,
    joint_coherence,
    mean_pairwise_distance,
    train_modality_classifier,
)

NUM_LABELS = 4
CLASS_WORDS = ["zero", "one", "two", "three"]
FILLER = ["a", "the", "picture", "of", "digit", "drawn", "by", "hand", "small", "big", "neat", "messy"]
# mnist-like grey 28x28, svhn-like colour 32x32, and captions: three modalities over one label space.
MODALITIES = {"mnist": {"kind": "image", "shape": (1, 28, 28)}, "svhn": {"kind": "image", "shape": (3, 32, 32)},
              "caption": {"kind": "text"}}


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def square_images(labels: torch.Tensor, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Dim noise with one bright square in the quadrant that encodes the label (row = label // 2, col = label % 2)."""
    images = torch.randint(0, 60, (len(labels), channels, size, size), generator=generator, dtype=torch.uint8)
    half, side = size // 2, size // 4
    offsets = torch.randint(1, half - side, (len(labels), 2), generator=generator)
    for index, label in enumerate(labels.tolist()):
        row, col = (label // 2) * half + int(offsets[index, 0]), (label % 2) * half + int(offsets[index, 1])
        images[index, :, row:row + side, col:col + side] = 255
    return images


def captions(labels: torch.Tensor, generator: torch.Generator) -> list[str]:
    filler = torch.randint(0, len(FILLER), (len(labels), 4), generator=generator).tolist()
    capitalise = torch.rand(len(labels), generator=generator) < 0.5
    texts = []
    for label, words, upper in zip(labels.tolist(), filler, capitalise.tolist()):
        word = CLASS_WORDS[label].capitalize() if upper else CLASS_WORDS[label]
        texts.append(" ".join([FILLER[words[0]], FILLER[words[1]], word, FILLER[words[2]], FILLER[words[3]]]))
    return texts


def make_values(name: str, labels: torch.Tensor, generator: torch.Generator):
    if MODALITIES[name]["kind"] == "text":
        return captions(labels, generator)
    channels, size, _ = MODALITIES[name]["shape"]
    return square_images(labels, channels, size, generator)


def read_labels(name: str, values) -> torch.Tensor:
    """The label a value was made from, by the rule that made it (the fake model's 'encoder')."""
    if MODALITIES[name]["kind"] == "text":
        return torch.tensor([next(CLASS_WORDS.index(w) for w in text.lower().split() if w in CLASS_WORDS)
                             for text in values])
    half = values.shape[-1] // 2
    quadrants = values.float().sum(1).unflatten(1, (2, half)).unflatten(3, (2, half)).sum((2, 4))  # (N, 2, 2)
    return quadrants.flatten(1).argmax(1)


class FakeMultimodalModel:
    """Implements the generation contract. Coherent: every output shows one label (the conditioning examples' label
    in cross generation). Incoherent: every modality of every sample gets its own random label."""

    def __init__(self, coherent: bool = True):
        self.config = SimpleNamespace(modalities={name: {"kind": spec["kind"]} for name, spec in MODALITIES.items()})
        self.coherent = coherent
        self.calls = []

    def generate(self, num_samples=None, conditioned_on=None, targets=None, generator=None):
        self.calls.append({"num_samples": num_samples, "conditioned_on": None if conditioned_on is None
                           else sorted(conditioned_on), "targets": targets})
        if conditioned_on is None:
            names, labels = list(MODALITIES), torch.randint(0, NUM_LABELS, (num_samples,), generator=generator)
        else:
            decoded = [read_labels(name, values) for name, values in conditioned_on.items()]
            # cross_coherence must hand over aligned slices of the test examples.
            assert all(torch.equal(decoded[0], labels) for labels in decoded)
            names, labels = targets, decoded[0]
        outputs = {}
        for name in names:
            if not self.coherent:
                labels = torch.randint(0, NUM_LABELS, labels.shape, generator=generator)
            outputs[name] = make_values(name, labels, generator)
        return outputs


def labelled_data(num_examples: int, seed: int) -> tuple[dict, torch.Tensor]:
    generator = seeded(seed)
    labels = torch.randint(0, NUM_LABELS, (num_examples,), generator=generator)
    return {name: make_values(name, labels, generator) for name in MODALITIES}, labels


@pytest.fixture(scope="module")
def classifiers() -> ModalityClassifiers:
    values, labels = labelled_data(512, seed=1)
    return ModalityClassifiers.train({name: (spec["kind"], values[name], labels) for name, spec in MODALITIES.items()},
                                     NUM_LABELS, epochs={"mnist": 3, "svhn": 3, "caption": 10}, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def test_data() -> tuple[dict, torch.Tensor]:
    return labelled_data(120, seed=2)


# ---- classifiers ------------------------------------------------------------------------------------------------
def test_classifiers_learn_and_generalise(classifiers, test_data):
    values, labels = test_data
    assert isinstance(classifiers["mnist"], ImageClassifier) and isinstance(classifiers["caption"], TextClassifier)
    for name in MODALITIES:
        assert classifiers.accuracy(name, values[name], labels) >= 0.95, name  # chance is 0.25
        predictions = classifiers.predict(name, values[name])
        assert predictions.dtype == torch.long and predictions.shape == labels.shape


def test_text_classifier_lowercases_and_ignores_unknown_words(classifiers):
    texts = ["two", "TWO", "qwerty two zxcvb", "nothing known here"]
    predictions = classifiers.predict("caption", texts)
    assert predictions[:3].tolist() == [2, 2, 2]
    assert 0 <= int(predictions[3]) < NUM_LABELS  # no known word: the bias decides, without an error
    assert "qwerty" not in classifiers["caption"].vocabulary and "two" in classifiers["caption"].vocabulary


def test_training_is_seeded_and_leaves_the_global_rng_alone():
    values, labels = labelled_data(64, seed=3)
    state = torch.random.get_rng_state()
    first = train_modality_classifier("image", values["mnist"], labels, NUM_LABELS, epochs=1, batch_size=32, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = train_modality_classifier("image", values["mnist"], labels, NUM_LABELS, epochs=1, batch_size=32, seed=5)
    other = train_modality_classifier("image", values["mnist"], labels, NUM_LABELS, epochs=1, batch_size=32, seed=6)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(first.conv1.weight, other.conv1.weight)
    text = train_modality_classifier("text", values["caption"], labels, NUM_LABELS, epochs=1, batch_size=32, seed=5)
    again = train_modality_classifier("text", values["caption"], labels, NUM_LABELS, epochs=1, batch_size=32, seed=5)
    assert torch.equal(text.head.weight, again.head.weight) and text.vocabulary == again.vocabulary


def test_save_load_round_trip(classifiers, test_data, tmp_path):
    values, _ = test_data
    classifiers.save(tmp_path / "classifiers")
    assert sorted(p.name for p in (tmp_path / "classifiers").iterdir()) == ["classifiers.json",
                                                                             "classifiers.safetensors"]
    config = json.loads((tmp_path / "classifiers" / "classifiers.json").read_text())
    assert {name: entry["kind"] for name, entry in config["modalities"].items()} == \
        {name: spec["kind"] for name, spec in MODALITIES.items()}
    assert config["modalities"]["svhn"]["num_channels"] == 3 and config["modalities"]["svhn"]["image_size"] == 32
    assert config["modalities"]["caption"]["vocabulary"] == classifiers["caption"].vocabulary
    loaded = ModalityClassifiers.load(tmp_path / "classifiers")
    assert loaded.names == classifiers.names
    for name in MODALITIES:
        assert torch.equal(loaded.predict(name, values[name]), classifiers.predict(name, values[name]))
    # Saving again over the same folder replaces the files.
    loaded.save(tmp_path / "classifiers")
    assert ModalityClassifiers.load(tmp_path / "classifiers").names == classifiers.names
    with pytest.raises(ValueError, match="classifiers.safetensors"):
        ModalityClassifiers.load(tmp_path / "missing")


def test_classifiers_reject_bad_input(classifiers, test_data):
    values, labels = test_data
    with pytest.raises(ValueError, match="uint8"):
        classifiers.predict("mnist", values["mnist"].float())
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        classifiers.predict("mnist", values["svhn"])
    with pytest.raises(ValueError, match="uint8"):
        classifiers.predict("mnist", values["mnist"][0])
    with pytest.raises(ValueError, match="list of strings"):
        classifiers.predict("caption", "one string")
    with pytest.raises(ValueError, match="list of strings"):
        classifiers.predict("caption", ["fine", 3])
    with pytest.raises(ValueError, match="no classifier for modality 'audio'"):
        classifiers.predict("audio", values["mnist"])
    with pytest.raises(ValueError, match="labels"):
        classifiers.accuracy("mnist", values["mnist"], labels[:-1])
    with pytest.raises(ValueError, match="labels"):
        train_modality_classifier("image", values["mnist"], labels[:-1], NUM_LABELS, epochs=1, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="num_labels"):
        train_modality_classifier("image", values["mnist"], labels, 3, epochs=1, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="H = W"):
        train_modality_classifier("image", values["mnist"][:, :, :, :20], labels, NUM_LABELS, epochs=1, batch_size=8,
                                  seed=0)
    with pytest.raises(ValueError, match="unknown modality kind 'audio'"):
        train_modality_classifier("audio", values["mnist"], labels, NUM_LABELS, epochs=1, batch_size=8, seed=0)


# ---- pure scores ------------------------------------------------------------------------------------------------
def test_joint_agreement_and_accuracy_on_known_answers():
    predictions = {"a": torch.tensor([0, 1, 2, 3]), "b": torch.tensor([0, 1, 0, 3]), "c": torch.tensor([0, 1, 2, 2])}
    assert joint_agreement(predictions) == 0.5  # rows 0 and 1 agree
    assert joint_agreement(predictions, references=torch.tensor([0, 2, 2, 3])) == 0.25  # only row 0 is also right
    assert joint_agreement(torch.stack(list(predictions.values()), dim=1)) == 0.5  # the (N, M) table form
    assert joint_agreement({"a": torch.tensor([1, 2])}) == 1.0
    assert accuracy(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy([3, 3], [3, 3]) == 1.0
    with pytest.raises(ValueError, match="lengths"):
        joint_agreement({"a": torch.tensor([0, 1]), "b": torch.tensor([0])})
    with pytest.raises(ValueError, match="references"):
        joint_agreement(predictions, references=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        joint_agreement({"a": torch.tensor([0.5, 1.0])})
    with pytest.raises(ValueError, match="empty"):
        joint_agreement({})
    with pytest.raises(ValueError, match="labels"):
        accuracy(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="zero examples"):
        accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))


@pytest.mark.skipif(importlib.util.find_spec("evaluate") is None, reason="evaluate is not installed")
def test_coherence_as_evaluate_module():
    import evaluate

    from hf_latent_ebm.metrics import evaluate_module_path

    rows = [[0, 0, 0], [1, 1, 1], [2, 0, 2], [3, 3, 2]]
    joint = evaluate.load(evaluate_module_path("coherence"))
    assert joint.compute(predictions=rows)["coherence"] == 0.5
    cross = evaluate.load(evaluate_module_path("coherence"), config_name="cross")
    assert cross.compute(predictions=rows, references=[0, 2, 2, 3])["coherence"] == 0.25
    assert cross.compute(predictions=[[1], [2], [2]], references=[1, 1, 2])["coherence"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="'cross' configuration"):
        joint.compute(predictions=rows, references=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="needs references"):
        cross.compute(predictions=rows)
    with pytest.raises(ValueError, match="one label per modality"):
        joint.compute(predictions=[[0, 0], [1]])


# ---- model-level coherence against the generation contract ------------------------------------------------------
def test_joint_coherence_of_a_coherent_and_an_incoherent_model(classifiers):
    model = FakeMultimodalModel(coherent=True)
    assert joint_coherence(model, classifiers, num_samples=50, generator=seeded(), batch_size=20) >= 0.96
    assert [call["num_samples"] for call in model.calls] == [20, 20, 10]
    broken = joint_coherence(FakeMultimodalModel(coherent=False), classifiers, 200, generator=seeded(), batch_size=100)
    assert broken < 0.2  # independent labels in 3 modalities agree with probability 1/16
    again = joint_coherence(FakeMultimodalModel(coherent=False), classifiers, 200, generator=seeded(), batch_size=100)
    assert again == broken
    # A plain dict of classifiers and a subset of modalities work as well.
    assert joint_coherence(model, dict(classifiers.classifiers), 20, seeded(), modalities=["mnist", "caption"]) >= 0.95


def test_cross_coherence_subsets_keys_and_scores(classifiers, test_data):
    values, labels = test_data
    model = FakeMultimodalModel(coherent=True)
    result = cross_coherence(model, classifiers, values, labels, generator=seeded(), batch_size=50)
    assert set(result["by_subset"]) == {"svhn,caption->mnist", "mnist,caption->svhn", "mnist,svhn->caption"}
    assert min(result["by_subset"].values()) >= 0.95 and list(result["mean_by_size"]) == [2]
    assert result["mean"] == pytest.approx(sum(result["by_subset"].values()) / 3)
    json.dumps(result)
    # One generate call per subset and batch, with all of that subset's targets at once.
    assert len(model.calls) == 3 * 3
    assert all(call["targets"] == [name for name in MODALITIES if name not in call["conditioned_on"]]
               for call in model.calls)

    single = cross_coherence(model, classifiers, values, labels, subsets="single", generator=seeded())
    assert len(single["by_subset"]) == 6 and list(single["mean_by_size"]) == [1]
    everything = cross_coherence(model, classifiers, values, labels, subsets="all", generator=seeded())
    assert len(everything["by_subset"]) == 9 and sorted(everything["mean_by_size"]) == [1, 2]
    assert everything["mean"] >= 0.95
    listed = cross_coherence(model, classifiers, values, labels, subsets=[["caption"], "svhn,mnist"],
                             targets=["mnist", "caption"], generator=seeded())
    assert set(listed["by_subset"]) == {"caption->mnist", "mnist,svhn->caption"}
    only_images = cross_coherence(model, classifiers, {"mnist": values["mnist"]}, labels, generator=seeded())
    assert set(only_images["by_subset"]) == {"mnist->svhn", "mnist->caption"}

    broken = cross_coherence(FakeMultimodalModel(coherent=False), classifiers, values, labels, subsets="all",
                             generator=seeded())
    assert broken["mean"] < 0.45  # chance is 0.25


def test_coherence_rejects_bad_calls(classifiers, test_data):
    values, labels = test_data
    model = FakeMultimodalModel()
    with pytest.raises(ValueError, match="unknown modalities"):
        cross_coherence(model, classifiers, {"audio": values["mnist"]}, labels)
    with pytest.raises(ValueError, match="one value per label"):
        cross_coherence(model, classifiers, values, labels[:-1])
    with pytest.raises(ValueError, match="does not provide"):
        cross_coherence(model, classifiers, {"mnist": values["mnist"]}, labels, subsets=[["svhn"]])
    with pytest.raises(ValueError, match="subsets must be one of"):
        cross_coherence(model, classifiers, values, labels, subsets="pairs")
    with pytest.raises(ValueError, match="leaves no target"):
        cross_coherence(model, classifiers, values, labels, subsets=[["mnist"]], targets=["mnist"])
    partial = ModalityClassifiers({"mnist": classifiers["mnist"], "caption": classifiers["caption"]})
    with pytest.raises(ValueError, match="no classifier for modalities"):
        joint_coherence(model, partial, 10)
    swapped = ModalityClassifiers({"mnist": classifiers["caption"], "svhn": classifiers["svhn"],
                                   "caption": classifiers["caption"]})
    with pytest.raises(ValueError, match="is 'image' but its classifier is 'text'"):
        joint_coherence(model, swapped, 10)

    class ShortModel(FakeMultimodalModel):
        def generate(self, **kwargs):
            outputs = super().generate(**kwargs)
            return {name: value[:-1] for name, value in outputs.items()}

    with pytest.raises(ValueError, match="expected 10"):
        joint_coherence(ShortModel(), classifiers, 10)


# ---- diversity -------------------------------------------------------------------------------------------------
def test_mean_pairwise_distance_on_known_answers():
    black, white = torch.zeros(1, 1, 4, 4, dtype=torch.uint8), torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    assert mean_pairwise_distance(torch.cat([black, black, black])) == 0.0
    assert mean_pairwise_distance(torch.cat([black, white])) == pytest.approx(1.0)
    # Pairs (b, b), (b, w), (b, w) of three images: distances 0, 1, 1 over three pairs.
    assert mean_pairwise_distance(torch.cat([black, black, white])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="N >= 2"):
        mean_pairwise_distance(black)


class CollapsedModel(FakeMultimodalModel):
    """Coherent, but every condition gives one fixed image: the class average a collapsed model decodes."""

    def generate(self, num_samples=None, conditioned_on=None, targets=None, generator=None):
        labels = read_labels(*next(iter(conditioned_on.items())))
        return {name: torch.cat([make_values(name, label[None], seeded(int(label))) for label in labels])
                for name in targets}


def test_cross_modal_diversity_separates_varied_from_collapsed_draws():
    values, labels = labelled_data(8, seed=5)
    reference = {"svhn": (make_values("svhn", labels.repeat(5), seeded(6)), labels.repeat(5))}
    given = {"caption": values["caption"]}
    varied = cross_modal_diversity(FakeMultimodalModel(), given, labels, reference, num_draws=4, generator=seeded(0))
    collapsed = cross_modal_diversity(CollapsedModel(), given, labels, reference, num_draws=4, generator=seeded(0))
    # The fake draws come from the reference's own distribution: ratio near 1; one image per condition: 0.
    assert 0.8 < varied["ratio"] < 1.25 and collapsed["ratio"] == 0.0
    assert set(varied["by_target"]) == {"svhn"} and varied["by_target"]["svhn"]["real"] > 0.1
    again = cross_modal_diversity(FakeMultimodalModel(), given, labels, reference, num_draws=4, generator=seeded(0))
    assert again == varied


def test_cross_modal_diversity_rejects_bad_calls():
    values, labels = labelled_data(4, seed=5)
    reference = {"svhn": (make_values("svhn", labels, seeded(6)), labels)}
    model, given = FakeMultimodalModel(), {"caption": values["caption"]}
    cases = [(dict(reference=reference, num_draws=1), "num_draws"),
             (dict(reference=reference, num_draws=2, targets=["caption"]), "image modalities"),
             (dict(reference={"mnist": reference["svhn"]}, targets=["svhn"]), "needs real images"),
             (dict(reference=reference, num_draws=3), "fewer than num_draws")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            cross_modal_diversity(model, given, labels, **kwargs)
    with pytest.raises(ValueError, match="one value per label"):
        cross_modal_diversity(model, given, labels[:2], reference, num_draws=2)
