"""The maximum-likelihood learner of Pang et al. 2020: posterior and prior short-run Langevin."""

import dataclasses
from dataclasses import dataclass, field

import torch
from huggingface_hub.dataclasses import strict

from ..decoders.multimodal import batch_size_of, first_rows
from ..decoders.base import decoder_negative_log_likelihood
from ..samplers.base import Sampler
from ..samplers.step_size import tune_step_size
from ..validation import require_at_least
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
    """
    The learner settings plus the MLE learner's own.

    Args:
        posterior_init (`str`, defaults to `"prior"`): Where inference chains start: "prior", draws from p0 as the
            papers, or "encoder", draws from an inference network trained alongside.
        step_size_search_every (`int`, defaults to 0): Every this many updates (from the first), tune the posterior
            chain's step size as Nijkamp et al. 2020 (short-run inference, "SRI") do: among `step_size_search_factors`
            times the current one, take the step whose chain, seen as an approximate posterior q_s, has the largest
            variational objective E_q[log p(x, z)] + H(q_s) on the batch's first `step_size_search_batch` examples
            (`samplers.step_size.short_run_objective`). The chosen step is written to the model config's
            `sampler_config["posterior_step_size"]`, so a saved model keeps it. 0 keeps the configured step.
        step_size_search_factors (`list[float]`, defaults to `[0.5, 0.71, 1.0, 1.41, 2.0]`): The candidates, as
            multiples of the current step (so the step can travel by repeated searches).
        step_size_search_batch (`int`, defaults to 8): Examples the objective is estimated on; its Jacobian costs
            `latent_dim` backward passes through the unrolled chain per candidate.
    """

    posterior_init: str = "prior"
    step_size_search_every: int = 0
    step_size_search_factors: list[float] = field(default_factory=lambda: [0.5, 0.71, 1.0, 1.41, 2.0])
    step_size_search_batch: int = 8

    def validate_posterior_init(self):
        if self.posterior_init not in POSTERIOR_INITS:
            raise ValueError(f"posterior_init must be one of {POSTERIOR_INITS}, got {self.posterior_init!r}")

    def validate_step_size_search(self):
        require_at_least(self, ("step_size_search_every",), 0)
        require_at_least(self, ("step_size_search_batch",), 1)
        if not self.step_size_search_factors or not all(factor > 0 for factor in self.step_size_search_factors):
            raise ValueError(f"step_size_search_factors must be a non-empty list of numbers > 0, got "
                             f"{self.step_size_search_factors}")


class MLELearner(Learner):
    r"""
    Maximum likelihood with Langevin inference (`mle_losses`), the papers' learner. With
    `posterior_init="encoder"` an inference network q(z | x) is trained alongside, by maximum likelihood on where
    the p0-started chains of the update end ("encoder_loss" = -log q(z+ | x)), and inference chains start from its
    draws instead of from p0; the update's own chains still start from p0, as in the papers.
    """

    config_class = MLELearnerConfig

    def __init__(self):
        self.updates = 0  # counts updates for the step-size search (training-time state, not saved)

    @classmethod
    def needs_encoder(cls, learner_config: MLELearnerConfig) -> bool:
        return learner_config.posterior_init == "encoder"

    def tuned_posterior_step(self, context: LearnerContext, observations,
                             generator: torch.Generator | None = None) -> float | None:
        """Every `step_size_search_every` updates, the posterior step size chosen by the SRI objective (see
        `MLELearnerConfig`), else None."""
        settings = context.settings
        every = getattr(settings, "step_size_search_every", 0)
        if not every or not (context.decoder.training and torch.is_grad_enabled()):  # training updates only
            return None
        self.updates += 1
        if (self.updates - 1) % every:
            return None
        rows = first_rows(observations, settings.step_size_search_batch)
        start = self.posterior_start(context, rows, generator)
        if start is None:
            start = context.prior.posterior_start(batch_size_of(rows), generator)
        best, _ = tune_step_size(context.posterior_sampler, context.posterior_potential(rows), start,
                                 settings.step_size_search_factors, generator,
                                 score_potential=context.posterior_potential(rows, True))
        return best

    def posterior_start(self, context: LearnerContext, observations, generator: torch.Generator | None = None):
        """Where the update's posterior chains start: None for p0, as in the papers."""
        return None

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        settings = context.settings
        step_size = self.tuned_posterior_step(context, observations, generator)
        if step_size is not None:  # this update already runs with it
            context = dataclasses.replace(context, posterior_sampler=context.posterior_sampler.with_chain(
                step_size=step_size))
        output = mle_losses(context.prior, context.decoder, observations, context.prior_sampler,
                            context.posterior_sampler, generator, settings.posterior_chain_prior,
                            self.posterior_start(context, observations, generator), settings.decoder_autocast)
        add_energy_magnitude_penalty(output, context.prior, settings.energy_magnitude_weight)
        if context.encoder is not None:
            encoder_loss = -context.encoder.log_density(observations, output.posterior_latents).mean()
            output.loss = output.loss + encoder_loss
            output.terms["encoder_loss"] = encoder_loss
        if step_size is not None:
            output.sampler_updates = {"posterior_step_size": step_size}
            output.terms["posterior_step_size"] = torch.tensor(step_size)
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
