"""Extending the library from outside the package with a sampler and a learner (docs/extending.md): a sampler is a
registered part chosen by `sampler_type`, and a learner gets the parts, samplers and its settings through a
`LearnerContext`, never the model."""

import dataclasses

import pytest
import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from hf_latent_ebm import (LatentEBMModel, LatentEBMModelConfig, LangevinSampler, Learner, LearnerOutput, Sampler,
                           SamplerOutput, register_learner, register_sampler)
from hf_latent_ebm.learners import LEARNERS, LearnerContext
from hf_latent_ebm.registry import PartConfig

TINY = dict(latent_dim=2, energy_hidden_dim=8, sampler_config={"prior_steps": 4, "posterior_steps": 3},
            decoder_config={"observation_dim": 5})


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@strict
@dataclasses.dataclass
class GradientDescentConfig(PartConfig):
    """The toy sampler's settings (the model config's `sampler_config`), declared next to it."""

    prior_steps: int = 60
    prior_step_size: float = 0.4
    posterior_steps: int = 20
    posterior_step_size: float = 0.1


class GradientDescentSampler(Sampler):
    """Plain gradient descent on U, z <- z - step_size * grad U(z): the chain without noise, a toy sampler."""

    config_class = GradientDescentConfig

    def __init__(self, num_steps: int, step_size: float):
        self.num_steps, self.step_size = num_steps, step_size

    @classmethod
    def from_config(cls, sampler_config, chain, compilable=True):
        prefix = "prior" if chain == "prior" else "posterior"
        return cls(getattr(sampler_config, f"{prefix}_steps"), getattr(sampler_config, f"{prefix}_step_size"))

    def with_chain(self, num_steps=None, step_size=None):
        return GradientDescentSampler(self.num_steps if num_steps is None else num_steps,
                                      self.step_size if step_size is None else step_size)

    def __call__(self, potential, latents, generator=None, return_diagnostics=False, potential_and_grad=None):
        z, energies, grad_norms = latents.detach(), [], []
        for _ in range(self.num_steps):
            with torch.enable_grad():
                z = z.detach().requires_grad_(True)
                energy = potential(z)
                (grad,) = torch.autograd.grad(energy.sum(), z)
            energies.append(energy.detach().mean())
            grad_norms.append(grad.norm(dim=1).mean())
            z = (z - self.step_size * grad).detach()
        if not return_diagnostics:
            return z
        if return_diagnostics == "last":
            energies, grad_norms = energies[-1:], grad_norms[-1:]
        stack = (lambda values: torch.stack(values) if values else z.new_zeros(0))
        return SamplerOutput(z, stack(energies), stack(grad_norms))


register_sampler("gradient_descent", GradientDescentSampler)


def test_a_registered_sampler_runs_every_chain_of_the_model():
    torch.manual_seed(0)
    model = LatentEBMModel(LatentEBMModelConfig(**TINY, sampler_type="gradient_descent")).eval()
    context = model.learner_context
    assert all(isinstance(sampler, GradientDescentSampler) for sampler in
               (context.prior_sampler, context.posterior_sampler, context.proper_posterior_sampler))
    # The prior chain is gradient descent on -log p(z) from draws of p0.
    start = model.prior.sample_reference(6, seeded(1))
    expected = start
    for _ in range(4):
        with torch.enable_grad():
            z = expected.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(model.prior.potential(z).sum(), z)
        expected = (z - 0.4 * grad).detach()
    torch.testing.assert_close(model.sample_latents(6, seeded(1)), expected)
    assert model.prior_sampler(num_steps=7).num_steps == 7
    # Training, inference and scores run through it.
    observations = torch.randn(4, 5)
    model.train()
    output = model(observations=observations, generator=seeded(2))
    assert torch.isfinite(output.loss) and {"prior_chain_grad_norm", "posterior_chain_grad_norm"} <= set(
        output.loss_terms)
    model.eval()
    assert model.infer_latents(observations, seeded(3)).shape == (4, 2)
    assert model.anomaly_score(observations, seeded(3)).shape == (4,)
    # The config names it, so it survives a save as any part does.
    assert LatentEBMModelConfig.from_dict(model.config.to_dict()).sampler_type == "gradient_descent"


def test_the_sampler_is_checked_by_name():
    with pytest.raises(ValueError, match="sampler_type: unknown sampler 'nope'.*gradient_descent.*langevin"):
        LatentEBMModelConfig(**TINY, sampler_type="nope")
    with pytest.raises(TypeError, match="subclass Sampler"):
        register_sampler("not_a_sampler", object)


def test_samplers_are_built_once_and_again_only_when_their_settings_change():
    model = LatentEBMModel(LatentEBMModelConfig(**TINY))
    context = model.learner_context
    assert model.learner_context is context and model.prior_sampler() is context.prior_sampler
    assert isinstance(context.prior_sampler, LangevinSampler)
    model.config.sampler_config["prior_steps"] = 9  # changed in place: the cache notices
    assert model.learner_context is not context and model.prior_sampler().num_steps == 9
    assert model.config.part_config("sampler").prior_steps == 9
    model.config.sampler_type = "gradient_descent"
    assert isinstance(model.prior_sampler(), GradientDescentSampler)


class RecordingLearner(Learner):
    """A learner that decodes at the posterior chain's end and records what every call was handed."""

    received = []

    def losses(self, context, observations, batch, generator=None):
        self.received.append(context)
        latents = self.infer_latents(context, observations, generator)
        loss = context.decoder.negative_log_likelihood(observations, latents).mean()
        return LearnerOutput(loss=loss, terms={"decoder_loss": loss}, posterior_latents=latents)

    def infer_latents(self, context, observations, generator=None, langevin_proper=False):
        self.received.append(context)
        start = context.prior.sample_reference(observations.shape[0], generator)
        return context.posterior_chain(langevin_proper)(context.posterior_potential(observations, langevin_proper),
                                                        start, generator)

    def check_batch(self, context, batch):
        self.received.append(context)

    def parameter_groups(self, context):
        self.received.append(context)
        return super().parameter_groups(context)


register_learner("recording", RecordingLearner)


def test_a_learner_is_handed_the_context_and_never_the_model():
    model = LatentEBMModel(LatentEBMModelConfig(**TINY, learner="recording", prior_type="gaussian"))
    assert type(model.learner) is RecordingLearner
    RecordingLearner.received.clear()
    observations = torch.randn(3, 5)
    model.build_optimizer()
    model(observations=observations, generator=seeded())
    model.reconstruct(observations, seeded())
    model.posterior_gaussian(observations, num_chains=2, generator=seeded())
    assert len(RecordingLearner.received) >= 5
    for context in RecordingLearner.received:
        assert type(context) is LearnerContext and context is model.learner_context
        # Parts, samplers and settings: nothing that leads back to the model or its config.
        assert not any(value is model or value is model.config for value in vars(context).values())
        assert not isinstance(context, nn.Module) and not hasattr(context, "config")
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.prior = None


@pytest.mark.parametrize("learner, prior_type", [("mle", "ebm"), ("vae_ebm", "ebm")])
def test_a_built_in_learner_runs_on_a_context_built_without_any_model(learner, prior_type):
    torch.manual_seed(0)
    config = LatentEBMModelConfig(**TINY, learner=learner, prior_type=prior_type,
                                  encoder_config={"observation_dim": 5, "hidden_dim": 8})
    model = LatentEBMModel(config)
    # The same parts and the same samplers and settings, written out by hand.
    by_hand = LearnerContext(
        prior=model.prior, decoder=model.decoder, encoder=model.encoder,
        prior_sampler=LangevinSampler(4, 0.4, fast_path="eager"),
        posterior_sampler=LangevinSampler(3, 0.1, fast_path="eager"),
        proper_posterior_sampler=LangevinSampler(3, 0.1, fast_path="eager"),
        settings=LEARNERS.get(learner).config_class(
            prior_learning_rate=config.part_config("learner").prior_learning_rate))
    assert by_hand.settings == model.learner_context.settings
    observations = torch.randn(4, 5)
    expected = model(observations=observations, generator=seeded(4))
    actual = LEARNERS.get(learner)().losses(by_hand, observations, {}, seeded(4))
    torch.testing.assert_close(actual.loss, expected.loss)
    torch.testing.assert_close(actual.posterior_latents, expected.posterior_latents)
