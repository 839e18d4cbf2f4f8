"""Typed sub-configs per part (issue 33, item 1) and the conversion of configs written before them (item 7)."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_latent_ebm import (LatentEBMClassificationConfig, LatentEBMConfig, LatentEBMForTextGeneration,
                           LatentEBMTextConfig)
from hf_latent_ebm.configuration_latent_ebm import (LEGACY_DECODER_FIELDS, LEGACY_ENCODER_FIELDS, LEGACY_LEARNER_FIELDS,
                                                    LEGACY_PRIOR_FIELDS, LEGACY_RENAMES, LEGACY_SAMPLER_FIELDS,
                                                    convert_legacy_config)
from hf_latent_ebm.decoders import DECODERS
from hf_latent_ebm.encoders import ENCODERS
from hf_latent_ebm.configuration_latent_ebm_text import SRI_POSTERIOR_STEP_SIZES
from hf_latent_ebm.learners import (LEARNERS, CouplingMLEConfig, CouplingVariationalConfig, LearnerConfig,
                                   MLELearnerConfig, VariationalLearnerConfig)
from hf_latent_ebm.priors import PRIORS, EnergyPriorConfig, PriorConfig
from hf_latent_ebm.registry import PartConfig
from hf_latent_ebm.samplers import SAMPLERS, LangevinConfig
from hf_latent_ebm.utils import parse_config_overrides

ROOT = Path(__file__).resolve().parents[1]
# config.json files written by the code before the sub-configs (the bundled Space models); chet is another family.
LEGACY_MODELS = ["spaces/image-generation/default_model", "spaces/text-generation/default_model",
                 "spaces/digit-classification/default_model", "spaces/multimodal-generation/models/mnist-captions",
                 "spaces/multimodal-generation/models/polymnist"]


def test_every_registered_prior_declares_a_part_config():
    for name in PRIORS.names():
        assert issubclass(PRIORS.config_class(name), PartConfig)
    assert PRIORS.config_class("gaussian") is PriorConfig
    assert PRIORS.config_class("ebm") is PRIORS.config_class("coupling") is EnergyPriorConfig


def test_prior_config_round_trips_through_config_json(tmp_path):
    config = LatentEBMConfig(latent_dim=4, prior_config={"hidden_dim": 8, "sigma": 0.5})
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["prior_config"] == {"hidden_dim": 8, "sigma": 0.5}
    assert not set(LEGACY_PRIOR_FIELDS) & set(saved)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.prior_config == config.prior_config
    assert loaded.part_config("prior") == EnergyPriorConfig(sigma=0.5, hidden_dim=8)


@pytest.mark.parametrize("prior_config, message", [
    ({"hidden_dim": 0}, "hidden_dim must be >= 1"),
    ({"activation": "tanh"}, "activation must be one of"),
    ({"width": 3}, "unknown field"),
    ({"hidden_dim": 2.5}, "hidden_dim"),
])
def test_prior_config_is_validated_against_the_prior_class(prior_config, message):
    with pytest.raises(ValueError, match=message):
        LatentEBMConfig(prior_config=prior_config)


def test_a_gaussian_prior_takes_no_energy_settings():
    with pytest.raises(ValueError, match="unknown field.*hidden_dim"):
        LatentEBMConfig(prior_type="gaussian", prior_config={"hidden_dim": 8})


def test_convert_legacy_config_moves_flat_fields_and_drops_unread_ones():
    old = {"prior_type": "ebm", "prior_sigma": 1.0, "energy_hidden_dim": 200, "energy_activation": "gelu",
           "latent_dim": 16}
    assert convert_legacy_config(old) == {"prior_type": "ebm", "latent_dim": 16,
                                          "prior_config": {"sigma": 1.0, "hidden_dim": 200, "activation": "gelu"}}
    assert "energy_hidden_dim" in old  # the input is left alone
    gaussian = convert_legacy_config({"prior_type": "gaussian", "prior_sigma": 2.0, "energy_hidden_dim": 200})
    assert gaussian["prior_config"] == {"sigma": 2.0}
    new = {"prior_type": "ebm", "prior_config": {"hidden_dim": 8}}
    assert convert_legacy_config(new) == new


@pytest.mark.parametrize("path", LEGACY_MODELS)
def test_bundled_legacy_configs_convert_on_load(path):
    old = json.loads((ROOT / path / "config.json").read_text())
    assert set(LEGACY_PRIOR_FIELDS) & set(old), "the bundled file should still be in the old flat form"
    config = AutoConfig.from_pretrained(ROOT / path)
    typed = config.part_config("prior")
    assert typed.sigma == old.get("prior_sigma", 1.0)
    if isinstance(typed, EnergyPriorConfig):
        assert typed.hidden_dim == old["energy_hidden_dim"]
        assert typed.num_hidden_layers == old["energy_num_hidden_layers"]
        assert typed.activation == old["energy_activation"]
    model = AutoModel.from_pretrained(ROOT / path)  # weights must fit the converted prior exactly
    samples = model.sample_latents(2, torch.Generator().manual_seed(0))
    assert torch.isfinite(samples).all()


def test_presets_merge_sub_config_overrides_field_by_field():
    class Preprocessor:
        numeric_columns, category_sizes, label_names = ["a"], [3], ["no", "yes"]

        def to_dict(self):
            return {}

    config = LatentEBMClassificationConfig.for_table(Preprocessor(), prior_config={"sigma": 0.5})
    assert config.prior_config == {"hidden_dim": 64, "sigma": 0.5}
    flat = LatentEBMClassificationConfig.for_table(Preprocessor(), energy_hidden_dim=8)
    assert flat.prior_config == {"hidden_dim": 8}
    assert LatentEBMConfig.paper_svhn(prior_config={"hidden_dim": 8}).part_config("prior").hidden_dim == 8


def test_config_overrides_reach_nested_fields():
    assert parse_config_overrides('{"prior_config.hidden_dim": 8, "latent_dim": 4}') == {
        "prior_config": {"hidden_dim": 8}, "latent_dim": 4}
    assert parse_config_overrides('{"prior_config": {"sigma": 0.5}, "prior_config.hidden_dim": 8}') == {
        "prior_config": {"sigma": 0.5, "hidden_dim": 8}}


def test_the_sampler_declares_its_config_and_the_text_defaults_merge_under_a_given_one(tmp_path):
    assert SAMPLERS.config_class("langevin") is LangevinConfig
    assert LatentEBMConfig().part_config("sampler") == LangevinConfig()
    text = LatentEBMTextConfig(vocab_size=20, sampler_config={"posterior_steps": 5})
    chain = text.part_config("sampler")
    assert (chain.posterior_steps, chain.posterior_step_schedule, chain.posterior_noise_scale,
            chain.prior_step_size) == (5, SRI_POSTERIOR_STEP_SIZES, 0.05, 0.2)
    text.sampler_config = {"noise": False}  # assigned later: still over the class's defaults
    assert text.part_config("sampler").posterior_noise_scale == 0.05 and not text.part_config("sampler").noise
    constant = LatentEBMTextConfig(vocab_size=20, sampler_config={"posterior_step_schedule": None})
    assert constant.part_config("sampler").posterior_step_schedule is None
    config = LatentEBMConfig(latent_dim=4, sampler_config={"prior_steps": 7, "fast_path": "eager"})
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["sampler_config"] == {"prior_steps": 7, "fast_path": "eager"}
    assert not set(LEGACY_SAMPLER_FIELDS) & set(saved)
    assert AutoConfig.from_pretrained(tmp_path).part_config("sampler") == LangevinConfig(prior_steps=7,
                                                                                          fast_path="eager")


def test_convert_legacy_config_moves_the_chain_fields():
    old = {"prior_langevin_steps": 30, "posterior_langevin_step_schedule": [0.5], "langevin_noise": False,
           "langevin_fast_path": "eager", "latent_dim": 4}
    assert convert_legacy_config(old) == {"latent_dim": 4, "sampler_config": {
        "prior_steps": 30, "posterior_step_schedule": [0.5], "noise": False, "fast_path": "eager"}}
    # A flat keyword wins over a preset's sub-config, field by field.
    config = LatentEBMConfig(sampler_config={"prior_steps": 5, "noise": False}, prior_langevin_steps=9)
    assert config.sampler_config == {"prior_steps": 9, "noise": False}
    assert parse_config_overrides('{"sampler_config.prior_steps": 8}') == {"sampler_config": {"prior_steps": 8}}


@pytest.mark.parametrize("path", LEGACY_MODELS)
def test_bundled_legacy_configs_keep_their_chains(path):
    old = json.loads((ROOT / path / "config.json").read_text())
    assert set(LEGACY_SAMPLER_FIELDS) & set(old), "the bundled file should still be in the old flat form"
    chain = AutoConfig.from_pretrained(ROOT / path).part_config("sampler")
    for flat, name in LEGACY_SAMPLER_FIELDS.items():
        if flat in old:
            assert getattr(chain, name) == old[flat], flat


def test_every_registered_learner_declares_a_learner_config():
    for name in LEARNERS.names():
        assert issubclass(LEARNERS.config_class(name), LearnerConfig), name
    assert LEARNERS.config_class("mle") is MLELearnerConfig and LEARNERS.config_class("vae") is VariationalLearnerConfig
    assert LEARNERS.config_class("coupling_vae") is CouplingVariationalConfig
    assert LEARNERS.config_class("coupling_mle") is CouplingMLEConfig


def test_convert_legacy_config_moves_the_learner_fields():
    old = {"learner": "mle", "prior_learning_rate": 1e-3, "posterior_chain_prior": "reference", "vae_free_bits": 0.0,
           "posterior_init": "prior", "latent_dim": 4}
    # vae_free_bits at its old default is dropped for MLE (old files carry it for every learner); posterior_init kept.
    assert convert_legacy_config(old) == {"learner": "mle", "latent_dim": 4, "learner_config": {
        "prior_learning_rate": 1e-3, "posterior_chain_prior": "reference", "posterior_init": "prior"}}
    vae = convert_legacy_config({"learner": "vae", "vae_free_bits": 0.5, "posterior_init": "prior"})
    assert vae == {"learner": "vae", "learner_config": {"vae_free_bits": 0.5}}
    # A set value a learner does not read is kept, so validation names it.
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['posterior_init'\] for VariationalLearnerConfig"):
        LatentEBMConfig(learner="vae", prior_type="gaussian", posterior_init="encoder")
    config = LatentEBMConfig(learner_config={"prior_learning_rate": 1e-3, "decoder_lr_decay": 1.0},
                             prior_learning_rate=2e-3)  # a flat keyword wins, field by field
    assert config.learner_config == {"prior_learning_rate": 2e-3, "decoder_lr_decay": 1.0}
    assert parse_config_overrides('{"learner_config.vae_free_bits": 0.1}') == {"learner_config": {"vae_free_bits": 0.1}}


def test_learner_presets_and_class_defaults_merge_field_by_field(tmp_path):
    text = LatentEBMTextConfig(vocab_size=20, learner_config={"prior_learning_rate": 1e-3})
    learner = text.part_config("learner")
    assert (learner.posterior_chain_prior, learner.prior_learning_rate, learner.decoder_learning_rate) == (
        "reference", 1e-3, 1e-3)
    classifier = LatentEBMClassificationConfig(num_labels=3, learner_config={"label_loss_weight": 5.0})
    assert classifier.part_config("learner") == CouplingVariationalConfig(label_loss_weight=5.0,
                                                                          energy_magnitude_weight=0.1)
    svhn = LatentEBMConfig.paper_svhn(learner_config={"prior_lr_decay": 1.0})
    assert svhn.part_config("learner") == MLELearnerConfig(prior_learning_rate=2e-5, decoder_learning_rate=1e-4,
                                                           prior_lr_decay=1.0)
    svhn.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert not set(LEGACY_LEARNER_FIELDS) & set(saved)
    assert AutoConfig.from_pretrained(tmp_path).part_config("learner") == svhn.part_config("learner")


@pytest.mark.parametrize("path", LEGACY_MODELS)
def test_bundled_legacy_configs_keep_their_learner_settings(path):
    old = json.loads((ROOT / path / "config.json").read_text())
    assert set(LEGACY_LEARNER_FIELDS) & set(old), "the bundled file should still be in the old flat form"
    config = AutoConfig.from_pretrained(ROOT / path)
    learner = config.part_config("learner")
    assert not set(LEGACY_LEARNER_FIELDS) & set(config.to_dict())
    for flat in LEGACY_LEARNER_FIELDS:
        if flat in old and hasattr(learner, flat):
            assert getattr(learner, flat) == old[flat], flat
        elif flat in old:  # dropped: a field this learner does not read, at its old default
            assert old[flat] in (0.0, "prior", 100.0, 10.0), flat


# ---- decoders and encoders (item 1's last parts: `from_config`, `*_kwargs` and the multimodal spec dicts) --------

def test_every_built_in_decoder_and_encoder_declares_a_part_config():
    for registry in (DECODERS, ENCODERS):
        for name in registry.names():
            if registry.get(name).__module__.startswith("hf_latent_ebm."):
                assert issubclass(registry.config_class(name), PartConfig), name
                assert not hasattr(registry.get(name), "from_config"), name  # one route: the config's arguments


def test_convert_legacy_config_moves_the_decoder_and_encoder_fields():
    image = convert_legacy_config({"model_type": "latent_ebm", "decoder_base_channels": 32, "decoder_sigma": 0.2})
    assert image["decoder_config"] == {"base_channels": 32, "sigma": 0.2}
    assert image["encoder_config"] == {"base_channels": 32}  # the encoder mirrored the generator's width
    text = convert_legacy_config({"model_type": "latent_ebm_text", "decoder_type": "transformer", "hidden_dim": 64,
                                  "embedding_dim": 32, "num_decoder_layers": 2, "num_attention_heads": 8,
                                  "decoder_dropout": 0.1})
    # The transformer has no embedding_dim (its width is hidden_dim): dropped, as the old config never read it.
    assert text["decoder_config"] == {"hidden_dim": 64, "num_layers": 2, "num_heads": 8, "dropout": 0.1}
    assert text["encoder_config"] == {"embedding_dim": 32, "hidden_dim": 64}
    generic = convert_legacy_config({"model_type": "latent_ebm_classification", "decoder_type": "lstm",
                                     "decoder_kwargs": {"vocab_size": 9, "cell": "lstm", "hidden_dim": 4},
                                     "encoder_kwargs": {"vocab_size": 9}})
    assert generic["decoder_config"] == {"vocab_size": 9, "hidden_dim": 4} and "decoder_kwargs" not in generic
    assert generic["encoder_config"] == {"vocab_size": 9}
    spec = {"kind": "text", "decoder_type": "gru", "decoder_kwargs": {"cell": "gru", "vocab_size": 9},
            "encoder_type": "lstm", "encoder_kwargs": {"vocab_size": 9}}
    multimodal = convert_legacy_config({"model_type": "latent_ebm_multimodal", "modalities": {"caption": spec}})
    assert multimodal["modalities"]["caption"] == {"kind": "text", "decoder_type": "gru",
                                                   "decoder_config": {"vocab_size": 9}, "encoder_type": "lstm",
                                                   "encoder_config": {"vocab_size": 9}}
    # Another family's config is left alone (Chet's hidden_dim is its own field).
    assert convert_legacy_config({"model_type": "chet", "hidden_dim": 150}) == {"model_type": "chet", "hidden_dim": 150}


@pytest.mark.parametrize("path", LEGACY_MODELS)
def test_bundled_legacy_configs_keep_their_decoder_and_encoder_settings(path):
    old = json.loads((ROOT / path / "config.json").read_text())
    config = AutoConfig.from_pretrained(ROOT / path)
    saved = config.to_dict()
    assert not (set(LEGACY_DECODER_FIELDS) | set(LEGACY_RENAMES)) & set(saved)
    decoder, encoder = config.part_arguments("decoder"), config.part_arguments("encoder")
    if "modalities" in old:  # each spec's kwargs, renamed, with the recurrent decoder's cell now its class's
        for name, spec in old["modalities"].items():
            new = config.modalities[name]
            assert {**new["decoder_config"], **({"cell": spec["decoder_type"]} if "cell" in spec["decoder_kwargs"]
                                                 else {})} == spec["decoder_kwargs"]
            assert new["encoder_config"] == spec["encoder_kwargs"]
        assert decoder == {"modalities": config.modalities}
    elif "decoder_kwargs" in old:
        assert {key: decoder[key] for key in old["decoder_kwargs"]} == old["decoder_kwargs"]
        assert {key: encoder[key] for key in old["encoder_kwargs"]} == old["encoder_kwargs"]
    else:  # the image and text configs' flat fields
        for flat, name in LEGACY_DECODER_FIELDS.items():
            if flat in old and name in decoder:
                assert decoder[name] == old[flat], flat
        for flat, name in LEGACY_ENCODER_FIELDS.items():
            if flat in old and name in encoder:
                assert encoder[name] == old[flat], flat
    # The weights fit the parts built from the converted settings exactly (a strict load).
    model = AutoModel.from_pretrained(ROOT / path)
    assert type(model.decoder).config_class is not None


def test_a_part_settings_error_names_the_sub_config_and_the_text_facts_come_from_the_config():
    with pytest.raises(ValueError, match="(?s)decoder_config: .*multiple of num_heads 3"):
        LatentEBMTextConfig(vocab_size=50, decoder_type="transformer", decoder_config={"num_heads": 3})
    text = LatentEBMTextConfig(vocab_size=50, max_length=12, decoder_type="gru", decoder_config={"hidden_dim": 16})
    arguments = text.part_arguments("decoder")
    assert arguments["vocab_size"] == 50 and arguments["max_length"] == 12 and arguments["hidden_dim"] == 16
    model = LatentEBMForTextGeneration(text)
    assert isinstance(model.decoder.rnn, torch.nn.GRU) and model.decoder.max_length == 12
    with pytest.raises(ValueError, match=r"decoder_config: \['vocab_size'\] are set by this config's own field"):
        LatentEBMTextConfig(decoder_config={"vocab_size": 9})
