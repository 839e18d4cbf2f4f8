"""Extending the library from outside the package: a decoder registered with the public call, trained by the MLE and
the ELBO learners through the trainer, saved, and reloaded with AutoModel (what docs/extending.md shows); and a prior
the same way (its class and config class here, one `register_prior` call, no library file touched)."""

import dataclasses
import json

import pytest
import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoModel

from hf_latent_ebm import (DECODERS, Decoder, LatentEBMConfig, LatentEBMModel, LatentEBMModelConfig,
                           LatentEBMTextConfig, Learner, register_decoder)
from hf_latent_ebm.decoders import check_float_batch
from hf_latent_ebm.priors import Prior, PriorConfig, register_prior
from hf_latent_ebm.registry import Registry
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments


class LinearGaussianDecoder(Decoder):
    """p(x | z) = N(W z + b, sigma^2 I) on vectors: factor analysis, with a latent EBM prior when the prior is one."""

    def __init__(self, latent_dim: int, observation_dim: int, sigma: float = 0.5):
        super().__init__()
        self.observation_dim, self.sigma = observation_dim, sigma
        self.linear = nn.Linear(latent_dim, observation_dim)

    def negative_log_likelihood(self, observations, latents):
        return (observations - self.linear(latents)).pow(2).sum(dim=1) / (2 * self.sigma**2)

    def decode(self, latents, generator=None):
        return self.linear(latents)

    def check_observations(self, observations, check_values=True):
        check_float_batch("observations", observations, (self.observation_dim,), check_values)


register_decoder("linear_gaussian", LinearGaussianDecoder)

SETTINGS = dict(latent_dim=2, energy_hidden_dim=16, sampler_config={"prior_steps": 10, "posterior_steps": 10},
                decoder_type="linear_gaussian", decoder_config={"observation_dim": 6},
                encoder_config={"observation_dim": 6, "hidden_dim": 16}, decoder_learning_rate=1e-2,
                prior_learning_rate=1e-3)


def factor_data(count=256, seed=0):
    """x = A z + noise with a bimodal z: the structure a linear decoder with a learned prior can capture."""
    import datasets

    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (count, 1), generator=generator) * 2 - 1
    latents = signs * 1.5 + 0.3 * torch.randn(count, 2, generator=generator)
    mixing = torch.randn(2, 6, generator=torch.Generator().manual_seed(99))
    observations = latents @ mixing + 0.1 * torch.randn(count, 6, generator=generator)
    return datasets.Dataset.from_dict({"observations": observations.numpy()})


@pytest.mark.parametrize("learner, prior_type", [("mle", "ebm"), ("vae", "gaussian"), ("vae_ebm", "ebm")])
def test_a_registered_decoder_trains_saves_and_reloads(tmp_path, learner, prior_type):
    torch.manual_seed(0)
    model = LatentEBMModel(LatentEBMModelConfig(**SETTINGS, learner=learner, prior_type=prior_type))
    assert isinstance(model.decoder, LinearGaussianDecoder)
    data = factor_data()
    held_out = torch.tensor(factor_data(64, seed=1)["observations"])

    def reconstruction_error():
        model.eval()
        error = (model.reconstruct(held_out, torch.Generator().manual_seed(5)) - held_out).pow(2).mean().item()
        model.train()
        return error

    before = reconstruction_error()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=150, batch_size=32, seed=1, sample_every=0,
                             checkpoint_every=0, log_every=10, num_grid_samples=4)
    LatentEBMTrainer(model, data, args).train()
    after = reconstruction_error()
    assert after < 0.5 * before, (before, after)
    # Every term the learner returns is logged.
    history = json.loads((tmp_path / "loss_history.json").read_text())
    expected_terms = {"mle": {"decoder_loss", "energy_loss", "energy_difference", "posterior_chain_grad_norm",
                              "prior_chain_grad_norm"},
                      "vae": {"decoder_loss", "kl_loss"},
                      "vae_ebm": {"decoder_loss", "kl_loss", "energy_loss", "posterior_energy", "prior_energy",
                                  "energy_difference", "prior_chain_grad_norm"}}[learner]
    assert set(history[-1]) == {"step"} | expected_terms
    assert (tmp_path / "samples.npy").exists() and (tmp_path / "loss_curve.png").exists()

    model.save_pretrained(tmp_path / "saved")
    assert "linear_gaussian" in (tmp_path / "saved" / "README.md").read_text()
    loaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    assert type(loaded) is LatentEBMModel and isinstance(loaded.decoder, LinearGaussianDecoder)
    for (name, expected), (_, actual) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(expected, actual), name
    model.eval()
    assert torch.equal(loaded.sample(5, torch.Generator().manual_seed(3)),
                       model.sample(5, torch.Generator().manual_seed(3)))


def test_the_default_generic_model_runs_on_vectors():
    model = LatentEBMModel(LatentEBMModelConfig(latent_dim=3, decoder_config={"observation_dim": 5},
                                                sampler_config={"prior_steps": 3, "posterior_steps": 3})).eval()
    observations = torch.randn(4, 5)
    output = model(observations=observations, generator=torch.Generator().manual_seed(0))
    assert output.posterior_latents.shape == (4, 3) and output.loss.requires_grad
    assert model.sample(2).shape == (2, 5) and model.anomaly_score(observations).shape == (4,)
    with pytest.raises(ValueError, match="no observations"):
        model(pixel_values=observations)
    with pytest.raises(ValueError, match="shape"):
        model(observations=torch.randn(4, 6))
    with pytest.raises(ValueError, match="NaN"):
        model.anomaly_score(torch.full((2, 5), float("nan")))


def test_parts_are_checked_by_name_and_by_modality():
    with pytest.raises(ValueError, match="unknown decoder 'nope'.*linear_gaussian"):
        LatentEBMModelConfig(decoder_type="nope")
    with pytest.raises(ValueError, match="unknown learner"):
        LatentEBMConfig(learner="wake-sleep")
    with pytest.raises(ValueError, match="is for text models"):
        LatentEBMConfig(decoder_type="lstm")
    with pytest.raises(ValueError, match="is for image models"):
        LatentEBMTextConfig(encoder_type="conv", learner="vae", prior_type="gaussian")
    with pytest.raises(ValueError, match="is for generic models"):
        LatentEBMConfig(decoder_type="linear_gaussian")
    # A generic config builds any decoder from its decoder_config, the image generator included.
    generic_images = LatentEBMModel(LatentEBMModelConfig(latent_dim=4, decoder_type="conv", decoder_config=dict(
        image_size=28, num_channels=1, base_channels=4, sigma=0.3), sampler_config={"prior_steps": 2}))
    assert generic_images.sample(2).shape == (2, 1, 28, 28)
    # A decoder without a config class gets decoder_config as keyword arguments, checked against its constructor
    # when the config is built: the sub-config and the constructor are named.
    with pytest.raises(ValueError, match=r"decoder_config: got an unexpected keyword argument 'width'.*"
                                         r"LinearGaussianDecoder\(latent_dim"):
        LatentEBMModelConfig(decoder_type="linear_gaussian", decoder_config={"observation_dim": 6, "width": 3})
    with pytest.raises(ValueError, match="decoder_config: missing a required argument: 'observation_dim'"):
        LatentEBMModelConfig(decoder_type="linear_gaussian")
    # A decoder with a config class: unknown fields, wrong types and bad ranges name the sub-config and the field.
    with pytest.raises(ValueError, match=r"decoder_config: unknown field\(s\) \['width'\]"):
        LatentEBMModelConfig(decoder_config={"width": 3})
    with pytest.raises(ValueError, match="(?s)encoder_config: .*base_channels must be >= 1"):
        LatentEBMConfig(learner="vae", prior_type="gaussian", encoder_config={"base_channels": 0})
    # A modality's config supplies the data's shape itself; giving it in the sub-config is an error, not a tie-break.
    with pytest.raises(ValueError, match=r"decoder_config: \['image_size'\] are set by this config's own field"):
        LatentEBMConfig(decoder_config={"image_size": 32})


class BrokenDecoder(LinearGaussianDecoder):
    """A decoder with a bug in its constructor: the error must surface as itself, not as a settings error."""

    def __init__(self, latent_dim: int, observation_dim: int):
        super().__init__(latent_dim, observation_dim)
        self.scale = len(observation_dim)  # TypeError: an int has no len()


register_decoder("broken_linear", BrokenDecoder)


def test_an_error_inside_a_part_is_not_disguised_as_a_settings_error():
    config = LatentEBMModelConfig(decoder_type="broken_linear", decoder_config={"observation_dim": 6})
    with pytest.raises(TypeError, match="has no len"):
        LatentEBMModel(config)


def test_registries_take_subclasses_once():
    registry = Registry("decoder", Decoder)
    registry.register("linear", LinearGaussianDecoder)
    registry.register("linear", LinearGaussianDecoder)  # the same class again is fine (re-imported modules)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("linear", type("Other", (LinearGaussianDecoder,), {}))
    with pytest.raises(TypeError, match="subclass Decoder"):
        registry.register("learner", Learner)
    assert "linear" in registry and registry.names() == ["linear"]
    assert DECODERS.get("linear_gaussian") is LinearGaussianDecoder


# ---- a prior from outside the package: its own file (here, this module) plus one registration ------------------

@strict
@dataclasses.dataclass
class TiltedGaussianPriorConfig(PriorConfig):
    """The toy prior's settings (the model config's `prior_config`), declared next to it."""

    init_precision: float = 1.0

    def validate_precision(self):
        if not self.init_precision > 0:
            raise ValueError(f"init_precision must be > 0, got {self.init_precision}")


class TiltedGaussianPrior(Prior):
    """E(z) = sum_i (softplus(a_i) - softplus(a_i^0)) z_i^2 / 2 - b.z: a learned diagonal Gaussian written as an
    energy on p0, so the MLE learner's prior chain and contrastive energy loss learn it like any energy."""

    config_class = TiltedGaussianPriorConfig

    def __init__(self, latent_dim, reference_sigma, init_precision):
        super().__init__(latent_dim, reference_sigma)
        start = torch.log(torch.expm1(torch.tensor(init_precision)))  # softplus^-1
        self.precision_logits = nn.Parameter(start.repeat(latent_dim))
        self.shift = nn.Parameter(torch.zeros(latent_dim))
        self.register_buffer("start", start.repeat(latent_dim))

    @classmethod
    def from_config(cls, config, latent_dim, num_labels=None):
        return cls(latent_dim, config.sigma, config.init_precision)

    def energy(self, latents):
        extra = nn.functional.softplus(self.precision_logits) - nn.functional.softplus(self.start)
        return (extra * latents.pow(2)).sum(dim=-1) / 2 - latents @ self.shift


register_prior("tilted_gaussian", TiltedGaussianPrior)


def test_a_registered_prior_trains_saves_reloads_and_describes_itself(tmp_path):
    torch.manual_seed(0)
    config = LatentEBMModelConfig(
        latent_dim=2, prior_type="tilted_gaussian", prior_config={"init_precision": 1.0},
        sampler_config={"prior_steps": 10, "posterior_steps": 10}, decoder_type="linear_gaussian",
        decoder_config={"observation_dim": 6}, learner_config={"prior_learning_rate": 1e-2,
                                                               "decoder_learning_rate": 1e-2})
    model = LatentEBMModel(config)
    assert isinstance(model.prior, TiltedGaussianPrior)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=60, batch_size=32, seed=1, sample_every=0,
                             checkpoint_every=0, log_every=10, num_grid_samples=4)
    LatentEBMTrainer(model, factor_data(), args).train()
    assert not torch.equal(model.prior.shift, torch.zeros(2))  # the energy's parameters learned
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["prior_type"] == "tilted_gaussian" and saved["prior_config"]["init_precision"] == 1.0
    # The card describes the prior by the base class's `describe` (a prior may override it).
    assert "learned energy-based prior p(z)" in (tmp_path / "saved" / "README.md").read_text()
    loaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    model.eval()
    assert torch.equal(loaded.sample_latents(5, torch.Generator().manual_seed(3)),
                       model.sample_latents(5, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="(?s)prior_config: .*init_precision must be > 0"):
        LatentEBMModelConfig(prior_type="tilted_gaussian", prior_config={"init_precision": 0.0})
