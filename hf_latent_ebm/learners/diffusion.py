"""Diffusion-assisted learning of the latent EBM prior (Cui & Han, ICML 2024): maximum likelihood for the decoder
with posterior Langevin, and for the prior recovery likelihood over a short noising sequence of the posterior
latents, so that no chain has to cross the marginal's modes."""

import torch

from ..decoders.base import decoder_negative_log_likelihood
from ..decoders.multimodal import batch_size_of
from .base import LearnerConfig, LearnerContext, LearnerOutput, chain_diagnostics
from .mle import MLELearner


def recovery_losses(prior, latents: torch.Tensor, sampler, generator: torch.Generator | None = None):
    """The prior's recovery-likelihood loss on clean `latents` (a `DiffusionPrior`): a stage t ~ U{0 .. T-1} per
    row, the forward pair (z_t, z_{t+1}), a negative by the stage's chain from z_{t+1}; returns the loss
    mean E(z_t, t) - mean E(z_t-, t), both means, and the negatives."""
    stages = torch.randint(prior.num_stages, (len(latents),), generator=generator, device=latents.device)
    noised, above = prior.noised_pair(latents, stages, generator)
    negatives = noised.clone()
    for stage in stages.unique().tolist():  # one chain per stage present (each has its own step and potential)
        rows = stages == stage
        negatives[rows] = prior.stage_chain(stage, above[rows], sampler, generator)
    negatives = negatives.detach()
    positive_energy = prior.stage_energy(noised, stages).mean()
    negative_energy = prior.stage_energy(negatives, stages).mean()
    return positive_energy - negative_energy, positive_energy, negative_energy, negatives


class DiffusionRecoveryLearner(MLELearner):
    r"""
    One update: z+ ~ p(z | x) by the posterior chain (as the MLE learner; its prior term is the stage-0 energy),
    the decoder's loss -log p(x | z+), and for the prior (a `DiffusionPrior`) a stage t ~ U{0 .. T-1} per example,
    the pair (z_t, z_{t+1}) of the forward noising of z+, and a negative z_t- ~ p(z_t | z_{t+1}) by the stage's
    short chain from z_{t+1}; the energy loss is mean E(z_t, t) - mean E(z_t-, t), each stage's conditional
    likelihood gradient (recovery likelihood, Gao et al. 2021). Prior samples run the stages from noise down.
    """

    config_class = LearnerConfig  # the MLE learner's inference options (an encoder, a step search) are not read

    @classmethod
    def needs_encoder(cls, learner_config: LearnerConfig) -> bool:
        return False

    @classmethod
    def check_config(cls, learner: str, prior_type: str, num_labels: int | None) -> None:
        from ..priors import PRIORS  # the registry imports every prior; one class is needed

        # The prior declares the learner it needs (`Prior.required_learner`); this learner needs such a prior.
        if PRIORS.get(prior_type, field="prior_type").required_learner != learner:
            raise ValueError(f"learner={learner!r} learns a prior made of conditional stages: use "
                             f"prior_type='diffusion', not {prior_type!r}")

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        prior, settings = context.prior, context.settings
        start = prior.posterior_start(batch_size_of(observations), generator)
        posterior = context.posterior_sampler(context.posterior_potential(observations), start, generator)
        decoder_loss = decoder_negative_log_likelihood(context.decoder, observations, posterior,
                                                       settings.decoder_autocast).mean()
        energy_loss, positive_energy, negative_energy, negatives = recovery_losses(
            prior, posterior.detach(), context.prior_sampler, generator)
        terms = {"decoder_loss": decoder_loss, "energy_loss": energy_loss,
                 **chain_diagnostics(positive_energy, negative_energy)}
        return LearnerOutput(loss=decoder_loss + energy_loss, terms=terms, posterior_latents=posterior,
                             prior_latents=negatives)


__all__ = ["DiffusionRecoveryLearner", "recovery_losses"]
