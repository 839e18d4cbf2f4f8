"""Typed sub-configs per part (issue 33, item 1) and the conversion of configs written before them (item 7)."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_latent_ebm import LatentEBMClassificationConfig, LatentEBMConfig
from hf_latent_ebm.configuration_latent_ebm import LEGACY_PRIOR_FIELDS, convert_legacy_config
from hf_latent_ebm.priors import PRIORS, EnergyPriorConfig, PriorConfig
from hf_latent_ebm.registry import PartConfig
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
