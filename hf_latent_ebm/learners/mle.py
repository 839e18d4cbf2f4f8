"""The maximum-likelihood learner of Pang et al. 2020: posterior and prior short-run Langevin."""

from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict

from ..decoders.multimodal import batch_size_of
from ..decoders.base import decoder_negative_log_likelihood
from ..samplers.base import Sampler
from .base import (Learner, LearnerConfig, LearnerContext, LearnerOutput, add_energy_magnitude_penalty,
                   chain_diagnostics, posterior_potential)


def mle_losses(prior, decoder, observations, prior_sampler: Sampler, posterior_sampler: Sampler,
               generator: torch.Generator | None = None, posterior_chain_prior: str = "model",
               posterior_start: torch.Tensor | None = None, decoder_autocast: str | None = None) -> LearnerOutput:
    r"""
    One MLE update's losses: z+ ~ p(z | x) and z- ~ p(z) by short-run Langevin from p0, then

    - the decoder gradient is E_{z+}[grad -log p(x | z+)], from the term "decoder_loss";
    - the prior gradient is E_{z+}[grad E(z+)] - E_{z-}[grad E(z-)], from the term "energy_loss".

    With an energy-based prior the terms also carry the chain diagnostics (`chain_diagnostics`):
    "energy_difference" (the value of "energy_loss") and both chains' |grad U| at their last step.

    The posterior chains start where the prior says (`Prior.posterior_start`: draws from p0 unless it overrides
    that) unless `posterior_start` is given. Both chains' outputs are detached, so the
    decoder term only reaches decoder parameters and the energy term only prior parameters: one optimizer with a
    parameter group per part (each with its own learning rate) trains both. `decoder_autocast` ("bfloat16") runs
    the decoder under autocast, in the chain and in its loss.
    """
    batch_size = batch_size_of(observations)
    if posterior_start is None:
        posterior_start = prior.posterior_start(batch_size, generator)
    prior_start = prior.sample_reference(batch_size, generator)
    potential = posterior_potential(prior, decoder, observations, posterior_chain_prior, decoder_autocast)
    # With an energy, both chains also report |grad U| at their last step (Nijkamp et al. 2020's diagnostics).
    diagnose = "last" if prior.has_energy else False
    posterior_chain = posterior_sampler(potential, posterior_start, generator, return_diagnostics=diagnose)
    prior_chain = prior.sample_from(prior_start, prior_sampler, generator, return_diagnostics=diagnose)
    posterior_latents, prior_latents = (posterior_chain.latents, prior_chain.latents) if diagnose else \
        (posterior_chain, prior_chain)
    decoder_loss = decoder_negative_log_likelihood(decoder, observations, posterior_latents, decoder_autocast).mean()
    posterior_energy, prior_energy = prior.energy(posterior_latents).mean(), prior.energy(prior_latents).mean()
    energy_loss = posterior_energy - prior_energy
    terms = {"decoder_loss": decoder_loss, "energy_loss": energy_loss}
    if diagnose:  # "energy_difference" is energy_loss's value, under the name every energy-based learner logs
        terms.update(chain_diagnostics(posterior_energy, prior_energy, posterior_chain, prior_chain))
    return LearnerOutput(loss=decoder_loss + energy_loss, terms=terms, posterior_latents=posterior_latents,
                         prior_latents=prior_latents)


POSTERIOR_INITS = ("prior", "encoder")


@strict
@dataclass
class MLELearnerConfig(LearnerConfig):
    """The learner settings plus where the MLE learner's inference chains start (`posterior_init`: "prior", draws
    from p0 as the papers, or "encoder", draws from an inference network trained alongside)."""

    posterior_init: str = "prior"

    def validate_posterior_init(self):
        if self.posterior_init not in POSTERIOR_INITS:
            raise ValueError(f"posterior_init must be one of {POSTERIOR_INITS}, got {self.posterior_init!r}")


class MLELearner(Learner):
    r"""
    Maximum likelihood with Langevin inference (`mle_losses`), the papers' learner. With
    `posterior_init="encoder"` an inference network q(z | x) is trained alongside, by maximum likelihood on where
    the p0-started chains of the update end ("encoder_loss" = -log q(z+ | x)), and inference chains start from its
    draws instead of from p0; the update's own chains still start from p0, as in the papers.
    """

    config_class = MLELearnerConfig

    @classmethod
    def needs_encoder(cls, learner_config: MLELearnerConfig) -> bool:
        return learner_config.posterior_init == "encoder"

    def posterior_start(self, context: LearnerContext, observations, generator: torch.Generator | None = None):
        """Where the update's posterior chains start: None for p0, as in the papers."""
        return None

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        settings = context.settings
        output = mle_losses(context.prior, context.decoder, observations, context.prior_sampler,
                            context.posterior_sampler, generator, settings.posterior_chain_prior,
                            self.posterior_start(context, observations, generator), settings.decoder_autocast)
        add_energy_magnitude_penalty(output, context.prior, settings.energy_magnitude_weight)
        if context.encoder is not None:
            encoder_loss = -context.encoder.log_density(observations, output.posterior_latents).mean()
            output.loss = output.loss + encoder_loss
            output.terms["encoder_loss"] = encoder_loss
        return output

    def infer_latents(self, context: LearnerContext, observations, generator: torch.Generator | None = None,
                      langevin_proper: bool = False) -> torch.Tensor:
        """Short-run posterior Langevin from p0 (or from a draw of q(z | x) with posterior_init="encoder"): the
        configured chain, or with `langevin_proper=True` one that targets the model's own p(z | x) (full noise, the
        learned energy in the prior term) whatever the training chain was."""
        if context.encoder is not None:
            start = context.encoder.sample(observations, generator)
        else:
            start = context.prior.posterior_start(batch_size_of(observations), generator)
        return context.posterior_chain(langevin_proper)(context.posterior_potential(observations, langevin_proper),
                                                        start, generator)


class EncoderRefinedMLELearner(MLELearner):
    r"""
    Maximum likelihood whose posterior chains, in the update and in inference, start from draws of the inference
    network q(z | x) and refine them by short-run Langevin on -log p(x, z) (Yuan, Lipizzi & Han 2024, with a
    mixture-of-experts q over modalities). q learns by maximum likelihood on where the chains end
    ("encoder_loss" = -log q(z+ | x)), so it learns to propose what the chains refine to; the chains make the
    model's posterior exact where q alone is not.
    """

    @classmethod
    def needs_encoder(cls, learner_config: LearnerConfig) -> bool:
        return True

    def posterior_start(self, context: LearnerContext, observations, generator: torch.Generator | None = None):
        return context.encoder.sample(observations, generator).detach()


__all__ = ["MLELearnerConfig", "MLELearner", "EncoderRefinedMLELearner", "mle_losses"]
