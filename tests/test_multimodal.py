"""The multimodal latent-EBM model: experts, missing modalities, generation, data preparation, training, CLI."""

import json
import warnings

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel

from hf_latent_ebm import (LatentEBMForMultimodalGeneration, LatentEBMMultimodalConfig, image_modality,
                           text_modality)
from hf_latent_ebm.cli import main
from hf_latent_ebm.distributions import diagonal_gaussian_log_density
from hf_latent_ebm.encoders.experts import expert_subsets
from hf_latent_ebm.tokenization import train_tokenizer
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .testing_utils import ModelTesterMixin

WORDS = ["zero", "one", "two", "three"]
TINY = dict(latent_dim=4, energy_hidden_dim=8, sampler_config={"prior_steps": 3, "posterior_steps": 2})


def toy_examples(count: int, seed: int = 0):
    """Two image modalities showing the class as a bright square (at a class-given place, of two sizes) and a
    caption naming it: labels, 'left' (1x28x28), 'right' (3x28x28) uint8 arrays and captions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, count)
    left = rng.integers(0, 40, (count, 1, 28, 28), dtype=np.uint8)
    right = rng.integers(0, 40, (count, 3, 28, 28), dtype=np.uint8)
    for index, label in enumerate(labels):
        top, side = 14 * (label // 2), 14 * (label % 2)
        left[index, :, top:top + 14, side:side + 14] = 255
        right[index, :, top + 3:top + 11, side + 3:side + 11] = 220
    captions = [f"the number {WORDS[label]}" if index % 2 else f"a {WORDS[label]}"
                for index, label in enumerate(labels)]
    return labels, left, right, captions


TOKENIZER = train_tokenizer([f"the number {w}" for w in WORDS] + [f"a {w}" for w in WORDS], min_frequency=1)


def tiny_modalities():
    return {"left": image_modality(num_channels=1, base_channels=4),
            "right": image_modality(num_channels=3, base_channels=4),
            "caption": text_modality(TOKENIZER, max_length=6, embedding_dim=8, hidden_dim=8)}


def tiny_config(**overrides):
    return LatentEBMMultimodalConfig(**{**TINY, "modalities": tiny_modalities(), **overrides})


def tiny_model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    model = LatentEBMForMultimodalGeneration(tiny_config(**overrides)).eval()
    model.set_tokenizer(TOKENIZER)
    return model


def toy_batch(model, count: int = 3, seed: int = 0, missing: bool = True) -> dict:
    labels, left, right, captions = toy_examples(count, seed)
    examples = {"left": list(left), "right": list(right), "caption": captions}
    if missing:  # each example misses one modality, in turn
        for index in range(count):
            examples[["left", "right", "caption"][index % 3]][index] = None
    return model.prepare_inputs(examples)


class MultimodalTester(ModelTesterMixin):
    model_class = LatentEBMForMultimodalGeneration
    config_class = LatentEBMMultimodalConfig
    overrides: dict = {}
    bad_config_overrides = [{"aggregation": "sum"}, {"modalities": {}},
                            {"modalities": {"modality_mask": image_modality()}},
                            {"modalities": {"a": {"kind": "audio"}}},
                            {"modalities": {"a": {**image_modality(), "kind": "audio"}}},
                            {"modalities": {"a": {**image_modality(), "decoder_type": "nope"}}}]

    def get_config(self, **overrides):
        return tiny_config(**{**self.overrides, **overrides})

    def make_model(self, seed: int = 0, **overrides):
        model = super().make_model(seed, **overrides)
        model.set_tokenizer(TOKENIZER)
        return model

    def get_inputs(self, batch_size: int = 3, seed: int = 0) -> dict:
        return toy_batch(self.make_model(), batch_size, seed)

    def bad_inputs(self):
        inputs = self.get_inputs()
        return [({**inputs, "left": inputs["left"][:, :, :14]}, "modality 'left'"),
                ({**inputs, "modality_mask": inputs["modality_mask"].float()}, "modality_mask must be"),
                ({**inputs, "modality_mask": inputs["modality_mask"][:, :2]}, "modality_mask must be"),
                ({**inputs, "caption": inputs["caption"].float()}, "modality 'caption'"),
                ({**inputs, "right": inputs["right"][:2]}, "has 2 examples")]

    def bad_input_values(self):
        inputs = self.get_inputs()
        empty = inputs["modality_mask"].clone()
        empty[1] = False
        ids = inputs["caption"].clone()
        ids[0, 1] = 999
        return [({**inputs, "modality_mask": empty}, "no modality present"),
                ({**inputs, "left": inputs["left"].long() + 300}, r"\[-1, 1\]"),
                ({**inputs, "caption": ids}, "token ids")]


class TestVariationalEBMMixtureOfExperts(MultimodalTester):
    overrides = {"aggregation": "moe", "learner": "vae_ebm"}


class TestGaussianProductOfExperts(MultimodalTester):
    overrides = {"aggregation": "poe", "learner": "vae", "prior_type": "gaussian"}


class TestEncoderRefinedMLEMoPoE(MultimodalTester):
    overrides = {"aggregation": "mopoe", "learner": "mle_encoder"}


# ---- experts ---------------------------------------------------------------------------------------------------
def test_expert_subsets():
    assert expert_subsets(3, "moe").tolist() == torch.eye(3, dtype=torch.bool).tolist()
    assert expert_subsets(3, "poe").tolist() == [[True] * 3]
    subsets = expert_subsets(3, "mopoe")
    assert len(subsets) == 7 and len({tuple(row) for row in subsets.tolist()}) == 7 and bool(subsets.any(1).all())


@pytest.mark.parametrize("aggregation", ["moe", "poe", "mopoe"])
def test_mixture_of_present_experts(aggregation):
    model = tiny_model(aggregation=aggregation)
    batch = toy_batch(model, 3)
    means, log_variances, present = model.encoder.experts(batch)
    assert present.tolist() == batch["modality_mask"].tolist()
    component_means, component_log_variances, weights = model.encoder.mixture(batch)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    for row in range(3):
        members = present[row].nonzero().flatten()
        precisions = (-log_variances[row, members]).exp()
        product_mean = (precisions * means[row, members]).sum(0) / precisions.sum(0)
        used = (weights[row] > 0).nonzero().flatten()
        if aggregation == "moe":  # each present expert alone, equally weighted
            assert len(used) == len(members)
            torch.testing.assert_close(component_means[row, used], means[row, members])
        elif aggregation == "poe":  # the product of the present experts
            torch.testing.assert_close(component_means[row, 0], product_mean)
            torch.testing.assert_close(component_log_variances[row, 0], -precisions.sum(0).log())
        else:  # the subsets of the 2 present modalities: 3 components, the full product among them
            assert len(used) == 3
            assert any(torch.allclose(component_means[row, k], product_mean) for k in used)
    # q's density is the mixture's, and the moment-matched Gaussian has its mean.
    latents = torch.randn(3, 4)
    expected = torch.logsumexp(torch.stack([weights[:, k].log() + diagonal_gaussian_log_density(
        latents, component_means[:, k], component_log_variances[:, k]) for k in range(weights.shape[1])]), 0)
    torch.testing.assert_close(model.encoder.log_density(batch, latents), expected)
    torch.testing.assert_close(model.encoder(batch)[0], (weights[..., None] * component_means).sum(1))


def test_missing_modalities_are_not_scored():
    model = tiny_model()
    batch = toy_batch(model, 3)
    latents = torch.randn(3, 4)
    scores = model.decoder.negative_log_likelihood(batch, latents)
    other = dict(batch)  # change the placeholders of the missing modalities: no score moves
    other["left"] = batch["left"].clone()
    other["left"][0] = 255
    other["caption"] = batch["caption"].clone()
    other["caption"][2, 1] = 5
    torch.testing.assert_close(model.decoder.negative_log_likelihood(other, latents), scores)
    # Each example's score is the sum of its present modalities' scores.
    parts = {name: model.decoder.decoders[name].negative_log_likelihood(
        batch[name].float() / 127.5 - 1 if name != "caption" else batch["caption"], latents)
        for name in model.modality_names}
    expected = sum(parts[name] * batch["modality_mask"][:, i] for i, name in enumerate(model.modality_names))
    torch.testing.assert_close(scores, expected)
    # A batch without some modality's column treats it as missing everywhere.
    selected = model.decoder.select({"left": batch["left"]})
    assert selected["modality_mask"].tolist() == [[True, False, False]] * 3


# ---- generation ------------------------------------------------------------------------------------------------
def test_joint_and_cross_modal_generation():
    model = tiny_model()
    joint = model.generate(5, generator=torch.Generator().manual_seed(0))
    assert set(joint) == {"left", "right", "caption"}
    assert joint["left"].shape == (5, 1, 28, 28) and joint["left"].dtype == torch.uint8
    assert joint["right"].shape == (5, 3, 28, 28)
    assert len(joint["caption"]) == 5 and all(isinstance(text, str) for text in joint["caption"])
    again = model.generate(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(joint["right"], again["right"]) and joint["caption"] == again["caption"]

    labels, left, right, captions = toy_examples(4)
    cross = model.generate(conditioned_on={"left": left, "caption": captions}, targets=["right"],
                           generator=torch.Generator().manual_seed(1))
    assert list(cross) == ["right"] and cross["right"].shape == (4, 3, 28, 28)
    others = model.generate(conditioned_on={"right": list(right.transpose(0, 2, 3, 1))},  # (H, W, C) images
                            generator=torch.Generator().manual_seed(1))
    assert set(others) == {"left", "caption"}
    # Joint samples feed back as conditions.
    assert set(model.generate(conditioned_on={"left": joint["left"]})) == {"right", "caption"}


def test_text_modality_never_generates_unk():
    words = train_tokenizer([f"the number {w}" for w in WORDS], kind="word", min_frequency=1)
    spec = text_modality(words, max_length=6, embedding_dim=8, hidden_dim=8)
    assert spec["decoder_config"]["unk_token_id"] == words.unk_token_id == 3
    model = LatentEBMForMultimodalGeneration(tiny_config(modalities={"left": tiny_modalities()["left"],
                                                                     "caption": spec})).eval()
    decoder = model.decoder.decoders["caption"]
    with torch.no_grad():
        decoder.output.bias[3] = 10.0  # <unk> would be nearly every token
    latents = torch.randn(8, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    ids = decoder.decode(latents, torch.Generator().manual_seed(0))
    assert ids.shape[1] > 2 and not (ids == 3).any()
    assert (decoder.generate(latents, 6, suppress_unk=False) == 3).any()


def test_generation_bad_input():
    model = tiny_model()
    labels, left, right, captions = toy_examples(2)
    cases = [(dict(conditioned_on={"depth": left}), "unknown modality 'depth'"),
             (dict(conditioned_on={"left": left}, targets=["sound"]), "unknown modality 'sound'"),
             (dict(conditioned_on={"left": right}), r"modality 'left' takes uint8 images of shape \(1, 28, 28\)"),
             (dict(conditioned_on={"caption": ["the number one one one one one"]}),
              r"more than its max_length 6: .* the config's modalities\['caption'\]\['decoder_config'\]"
              r"\['max_length'\], set when training with `hf-latent-ebm train --task multimodal --max-length N`"),
             (dict(conditioned_on={"left": left, "right": right[:1]}), "same, non-zero number"),
             (dict(conditioned_on={"left": [None, None]}), "no modality present"),
             (dict(conditioned_on={"left": left, "right": right, "caption": captions}), "name the targets"),
             (dict(num_samples=0), "positive int"),
             (dict(conditioned_on={"left": left}, num_samples=5), "disagrees"),
             (dict(num_samples=2, targets="left"), "list of modality names")]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            model.generate(**kwargs)


def test_sample_grids(tmp_path):
    model = tiny_model()
    labels, left, right, captions = toy_examples(3)
    joint = model.write_samples(tmp_path / "joint.png", 4, torch.Generator().manual_seed(0))
    cross = model.write_cross_modal_grid(tmp_path / "cross.png", {"caption": captions},
                                         generator=torch.Generator().manual_seed(0))
    for path, rows in ((joint, 4), (cross, 3)):
        image = Image.open(path)
        assert image.mode == "RGB" and image.height > rows * 28 and np.asarray(image).std() > 0
    # A row per caption, its 4 draws of each image modality beside it (28-pixel images enlarged to 84).
    from hf_latent_ebm.utils import cross_modal_grid, grid_font, text_extent

    generated = model.generate(conditioned_on={"caption": [c for c in captions for _ in range(4)]},
                               generator=torch.Generator().manual_seed(0))
    expected = cross_modal_grid({"caption": captions}, generated, 4)
    assert Image.open(cross).size == expected.size
    assert expected.height == text_extent("Hg", grid_font())[1] + 2 + 4 + 3 * (84 + 2) + 2
    assert np.array_equal(np.asarray(Image.open(cross)), np.asarray(expected))  # one generate call, same seed
    with pytest.raises(ValueError, match="num_draws must be a positive int"):
        model.write_cross_modal_grid(tmp_path / "bad.png", {"caption": captions}, num_draws=0)


# ---- data ------------------------------------------------------------------------------------------------------
def write_folder(root, count: int = 12):
    """A user's folder: PNG files for both image modalities, captions, some modalities missing."""
    labels, left, right, captions = toy_examples(count)
    (root / "images").mkdir(parents=True)
    (root / "modalities.json").write_text(json.dumps({"left": "image", "right": "image", "caption": "text"}))
    lines = []
    for index in range(count):
        Image.fromarray(left[index, 0]).save(root / "images" / f"l{index}.png")
        Image.fromarray(right[index].transpose(1, 2, 0)).save(root / "images" / f"r{index}.png")
        example = {"left": f"images/l{index}.png", "right": f"images/r{index}.png", "caption": captions[index],
                   "label": int(labels[index])}
        example.pop(["left", "right", "caption", "label"][index % 4])  # every fourth one has all modalities
        lines.append(json.dumps(example))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return labels, left, right, captions


def test_prepare_dataset_from_a_user_folder(tmp_path):
    from hf_latent_ebm.data import load_multimodal_dataset

    labels, left, right, captions = write_folder(tmp_path / "data")
    raw = load_multimodal_dataset(str(tmp_path / "data"))
    model = tiny_model()
    prepared = model.prepare_dataset(raw).with_format("torch")
    assert prepared.column_names == ["left", "right", "caption", "modality_mask", "label"]
    rows = prepared[:]
    expected_mask = [[index % 4 != 0, index % 4 != 1, index % 4 != 2] for index in range(12)]
    assert rows["modality_mask"].tolist() == expected_mask
    present = rows["modality_mask"][:, 0]
    assert torch.equal(rows["left"][present].to(torch.uint8), torch.from_numpy(left)[present])
    assert torch.equal(rows["right"][3].to(torch.uint8), torch.from_numpy(right[3]))
    assert TOKENIZER.decode(rows["caption"][3], skip_special_tokens=True) == captions[3]
    model.check_batch({name: rows[name] for name in model.input_names})

    # A shuffled view gives each row its own mask.
    order = [5, 0, 4, 1]
    shuffled = model.prepare_dataset(raw.select(order)).with_format("torch")[:]
    assert shuffled["modality_mask"].tolist() == [expected_mask[index] for index in order]
    # The bundled-array fast path keeps stored uint8 columns as they are.
    arrays = datasets.Dataset.from_dict(
        {"left": left, "right": right, "caption": captions},
        features=datasets.Features({"left": datasets.Array3D((1, 28, 28), "uint8"),
                                    "right": datasets.Array3D((3, 28, 28), "uint8"),
                                    "caption": datasets.Value("string")}))
    fast = model.prepare_dataset(arrays).with_format("torch")[:]
    assert torch.equal(fast["right"].to(torch.uint8), torch.from_numpy(right))
    assert bool(fast["modality_mask"].all())
    # Data lacking a modality entirely: a placeholder column, masked out.
    only_left = model.prepare_dataset(arrays.select_columns(["left"])).with_format("torch")[:]
    assert only_left["modality_mask"].tolist() == [[True, False, False]] * 12


def test_prepare_dataset_rejects_data_the_model_cannot_take(tmp_path):
    model = tiny_model()
    labels, left, right, captions = toy_examples(4)
    wrong_name = datasets.Dataset.from_dict({"depth": captions})
    with pytest.raises(ValueError, match="unknown modality 'depth'"):
        model.prepare_dataset(wrong_name)
    wrong_kind = datasets.Dataset.from_dict({"left": captions})
    with pytest.raises(ValueError, match="not of the model's kinds"):
        model.prepare_dataset(wrong_kind)
    too_long = datasets.Dataset.from_dict({"caption": ["the number one two three four five"] * 4})
    with pytest.raises(ValueError, match="max_length"):
        model.prepare_dataset(too_long)
    empty_row = datasets.Dataset.from_dict({"caption": ["a one", None]})
    with pytest.raises(ValueError, match="none of the modalities"):
        model.prepare_dataset(empty_row)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "modalities.json").write_text(json.dumps({"left": "image"}))
    (tmp_path / "bad" / "train.jsonl").write_text(json.dumps({"left": "images/missing.png"}) + "\n")
    from hf_latent_ebm.data import load_multimodal_dataset

    with pytest.raises(ValueError, match="missing.png"):
        load_multimodal_dataset(str(tmp_path / "bad"))


# ---- training --------------------------------------------------------------------------------------------------
def test_training_with_missing_modalities_lowers_the_loss_and_round_trips(tmp_path):
    model = tiny_model(latent_dim=8)
    labels, left, right, captions = toy_examples(256)
    raw = {"left": list(left[:, 0]), "right": list(right.transpose(0, 2, 3, 1)), "caption": list(captions)}
    for index in range(256):  # a third of the examples miss one modality
        if index % 3 == 0:
            raw[["left", "right", "caption"][index % 9 // 3]][index] = None
    data = model.prepare_dataset(datasets.Dataset.from_dict(
        raw, features=datasets.Features({"left": datasets.Image(), "right": datasets.Image(),
                                         "caption": datasets.Value("string")})))
    test_batch = toy_batch(model, 64, seed=1, missing=False)

    def decoder_loss():
        return model(**test_batch, generator=torch.Generator().manual_seed(0)).loss_terms["decoder_loss"].item()

    before = decoder_loss()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=60, batch_size=32, sample_every=0,
                             checkpoint_every=0, log_every=10, num_grid_samples=4)
    trainer = LatentEBMTrainer(model, data, args)
    trainer.train()
    model.eval()
    assert decoder_loss() < 0.8 * before
    assert {"decoder_loss", "kl_loss", "energy_loss"} <= set(trainer.history[-1])
    assert (tmp_path / "samples.png").exists() and (tmp_path / "loss_curve.png").exists()
    loaded = AutoModel.from_pretrained(tmp_path).eval()  # the trainer's final save, tokenizer included
    assert type(loaded) is LatentEBMForMultimodalGeneration and loaded.tokenizer is not None
    first = model.generate(3, generator=torch.Generator().manual_seed(2))
    second = loaded.generate(3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first["left"], second["left"]) and first["caption"] == second["caption"]
    from hf_latent_ebm.hub import write_model_card

    card = write_model_card(tmp_path).read_text()
    assert "multimodal latent-space energy-based prior" in card and "pipeline_tag: any-to-any" in card


def test_hf_trainer_trains_the_multimodal_model(tmp_path):
    from transformers import Trainer
    from transformers import TrainingArguments as HFTrainingArguments

    model = tiny_model().train()
    labels, left, right, captions = toy_examples(16)
    data = model.prepare_dataset(datasets.Dataset.from_dict(
        {"left": left, "caption": captions},
        features=datasets.Features({"left": datasets.Array3D((1, 28, 28), "uint8"),
                                    "caption": datasets.Value("string")}))).with_format("torch")
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    args = HFTrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, report_to=[],
                               use_cpu=True, logging_steps=1, save_strategy="no", max_grad_norm=0.0,
                               remove_unused_columns=False, dataloader_num_workers=0)
    optimizer = model.build_optimizer()
    result = Trainer(model=model, args=args, train_dataset=data.remove_columns([]),
                     optimizers=(optimizer, model.build_lr_scheduler(optimizer))).train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)
    changed = {name for name, param in model.named_parameters() if not torch.equal(before[name], param.detach())}
    assert any(name.startswith("decoder.decoders.left") for name in changed)
    assert any(name.startswith("encoder.encoders.caption") for name in changed)
    assert not any(name.startswith("decoder.decoders.right") for name in changed)  # never present


def test_cli_train_fine_tune_and_sample(tmp_path, capsys):
    write_folder(tmp_path / "data", count=16)
    overrides = json.dumps(TINY)
    common = ["train", "--task", "multimodal", "--data", str(tmp_path / "data"), "--batch-size", "4",
              "--max-steps", "2", "--sample-every", "0", "--checkpoint-every", "0", "--config-overrides", overrides]
    main(common + ["--output-dir", str(tmp_path / "run"), "--max-length", "40"])
    model = AutoModel.from_pretrained(tmp_path / "run")
    assert model.modality_names == ("left", "right", "caption")
    assert model.config.modalities["right"]["decoder_config"]["num_channels"] == 3
    assert model.config.modalities["caption"]["decoder_config"]["max_length"] == 40
    assert json.loads(model.tokenizer.backend_tokenizer.to_str())["model"]["type"] == "BPE"  # the default
    with pytest.raises(SystemExit):  # fine-tuning keeps the checkpoint's limit
        main(common + ["--output-dir", str(tmp_path / "bad"), "--init-from", str(tmp_path / "run"),
                       "--max-length", "30"])
    assert "has max_length [40], which fine-tuning and --resume keep" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common + ["--output-dir", str(tmp_path / "bad"), "--max-length", "3"])
    assert "--max-length 3 is shorter than the longest training caption" in capsys.readouterr().err
    # Fine-tuning the saved model on (the same kind of) data; a modality it lacks is refused.
    main(common + ["--output-dir", str(tmp_path / "tuned"), "--init-from", str(tmp_path / "run")])
    assert json.loads((tmp_path / "tuned" / "train_results.json").read_text())["num_train_examples"] == 16
    (tmp_path / "data" / "modalities.json").write_text(json.dumps({"left": "image", "right": "image",
                                                                   "caption": "text", "depth": "image"}))
    with pytest.raises(SystemExit):
        main(common + ["--output-dir", str(tmp_path / "bad"), "--init-from", str(tmp_path / "run")])
    # Declared, carried by no example: named as such (it was an IndexError traceback in the CLI).
    assert "modality 'depth' is declared but none of the 16 examples carries it" in capsys.readouterr().err
    (tmp_path / "data" / "modalities.json").write_text(json.dumps({"left": "image", "right": "image",
                                                                   "caption": "text"}))
    main(["sample", "--model", str(tmp_path / "run"), "--num-samples", "4", "--output", str(tmp_path / "s.png"),
          "--data", str(tmp_path / "data")])
    written = sorted(path.name for path in tmp_path.glob("s*.png"))
    assert written == ["s.png", "s_from_caption.png", "s_from_left.png", "s_from_right.png"]


# ---- cross-modal sampling ----------------------------------------------------------------------------------------
def test_cross_modal_posterior_chain_targets_the_prior_times_the_weighted_likelihood():
    """A known answer: with the caption's likelihood weighted towards 0, p(z) p(caption | z)^w is the Gaussian
    prior itself, so the chains started at q's draws must spread to N(0, I) (test_weighted_multimodal_likelihood
    checks the weighted sum the chain's potential uses)."""
    model = tiny_model(learner="vae", prior_type="gaussian", cross_modal_langevin_steps=600,
                       cross_modal_langevin_step_size=0.2)
    batch = model.prepare_inputs({"caption": ["a one"] * 400})
    with torch.no_grad():
        q_std = model.encoder.sample(batch, torch.Generator().manual_seed(0)).std(dim=0).mean().item()
    model.config.modalities["caption"]["conditioning_weight"] = 1e-6
    latents = model.conditional_latents(batch, torch.Generator().manual_seed(0))
    assert latents.mean(dim=0).abs().max() < 0.2 and (latents.std(dim=0) - 1).abs().max() < 0.15
    # "encoder" is q's draw: the same generator gives the same z as the encoder's own sample.
    model.config.cross_modal_sampling = "encoder"
    drawn = model.conditional_latents(batch, torch.Generator().manual_seed(0))
    assert torch.equal(drawn, model.encoder.sample(batch, torch.Generator().manual_seed(0)))
    assert abs(drawn.std(dim=0).mean().item() - q_std) < 1e-6


def test_cross_modal_generation_is_seeded_and_draws_differ():
    model = tiny_model(cross_modal_langevin_steps=5)
    captions = ["a two"] * 4
    first = model.generate(conditioned_on={"caption": captions}, targets=["left"],
                           generator=torch.Generator().manual_seed(3))["left"]
    again = model.generate(conditioned_on={"caption": captions}, targets=["left"],
                           generator=torch.Generator().manual_seed(3))["left"]
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])  # four draws of one caption, four images


def test_weighted_multimodal_likelihood():
    model = tiny_model()
    batch = toy_batch(model, count=4, missing=False)
    latents = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model.decoder.negative_log_likelihood(batch, latents)
        caption_only = model.decoder.negative_log_likelihood(batch, latents, modality_weights={"left": 0.0,
                                                                                              "right": 0.0})
        weighted = model.decoder.negative_log_likelihood(batch, latents, modality_weights={"caption": 3.0})
    torch.testing.assert_close(weighted, plain + 2 * caption_only)


@pytest.mark.parametrize("overrides, message", [
    ({"cross_modal_sampling": "mean"}, "cross_modal_sampling must be one of"),
    ({"cross_modal_langevin_steps": 0}, "cross_modal_langevin_steps"),
    ({"cross_modal_langevin_step_size": 0.0}, "cross_modal_langevin_step_size"),
    ({"modalities": {"caption": {**tiny_modalities()["caption"], "conditioning_weight": 0}}}, "conditioning_weight"),
    ({"modalities": {"caption": {**tiny_modalities()["caption"], "weight": 2.0}}}, "optionally")])
def test_cross_modal_sampling_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_unknown_caption_words_warn_for_a_word_level_tokenizer():
    word_tokenizer = train_tokenizer([f"the number {w}" for w in WORDS], kind="word", min_frequency=1)
    model = LatentEBMForMultimodalGeneration(tiny_config(modalities={
        "left": image_modality(num_channels=1, base_channels=4),
        "caption": text_modality(word_tokenizer, max_length=6, embedding_dim=8, hidden_dim=8)}))
    model.set_tokenizer(word_tokenizer)
    with pytest.warns(UserWarning, match="1 distinct words .* <unk>: 'zebra'"):
        model.prepare_inputs({"caption": ["the number zebra"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.prepare_inputs({"caption": ["the number two"]})
        tiny_model().prepare_inputs({"caption": ["a one"]})  # byte-level BPE has no unknown token
