"""Variational learners: an inference network q(z | x) and the ELBO, with a Gaussian or an energy-based prior."""

from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict

from ..distributions import kl_to_isotropic_gaussian, pick_mixture_components, sample_diagonal_gaussian
from .base import Learner, LearnerConfig, LearnerContext, LearnerOutput, add_energy_magnitude_penalty, chain_diagnostics


@strict
@dataclass
class VariationalLearnerConfig(LearnerConfig):
    """The learner settings plus the variational learners' free-bits floor (`vae_free_bits`, nats per latent
    dimension; 0 is the plain ELBO)."""

    vae_free_bits: float = 0.0

    def validate_free_bits(self):
        if not self.vae_free_bits >= 0:
            raise ValueError(f"vae_free_bits must be >= 0 nats per dimension, got {self.vae_free_bits}")


def _prior_class(prior_type: str) -> type:
    from ..priors import PRIORS  # the registry imports every prior; learners only need one class's flags

    return PRIORS.get(prior_type, field="prior_type")


def _check_gaussian_reference(learner: str, prior_type: str) -> None:
    # The ELBO's KL(q || p0) is the closed form between diagonal Gaussians.
    if not _prior_class(prior_type).gaussian_reference:
        raise ValueError(f"learner={learner!r} computes KL(q || p0) in closed form for a Gaussian p0: "
                         f"prior_type={prior_type!r} has another reference density; use learner='mle'")


class ELBOLearner(Learner):
    r"""
    The VAE: an inference network q(z | x), one reparameterised sample z+ ~ q, and the negative ELBO
    -log p(x | z+) + KL(q || p0) for encoder and decoder ("decoder_loss", "kl_loss"). With `vae_free_bits` > 0
    (the FB-VAE baseline of the text papers) the loss counts each latent dimension's batch-averaged KL as at least
    that many nats, so the optimiser gains nothing by pushing it lower; "kl_loss" stays the true KL.

    For a prior with an energy, p(z) = exp(-E(z)) p0(z) / Z, the prior also learns by maximum likelihood on q's
    samples: "energy_loss" = E(z+) - E(z-), z- from the prior chain (the gradient of log Z). The prior then learns
    q's aggregate posterior, which the ELBO-optimal prior is, and generation samples it instead of p0: the
    variational latent EBM (the unsupervised part of Pang & Wu 2021). z+ enters the energy detached: the full ELBO
    would also pull q towards low energy through E(z+), and the two can chase each other (the energy falls where q
    goes, q follows) until the energy loss runs off; docs/text.md has the run that showed it. "vae" is this learner
    with a prior without energy (the Gaussian VAE); "vae_ebm" with one.
    """

    infers_with_encoder = True
    config_class = VariationalLearnerConfig

    @classmethod
    def check_config(cls, learner: str, prior_type: str, num_labels: int | None) -> None:
        _check_gaussian_reference(learner, prior_type)
        if _prior_class(prior_type).has_energy:
            raise ValueError(f"learner='{learner}' is the Gaussian-prior VAE baseline: set "
                             "prior_type='gaussian' (or learner='vae_ebm' for an energy-based prior)")

    @classmethod
    def needs_encoder(cls, learner_config: LearnerConfig) -> bool:
        return True

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        return self.elbo_losses(context, observations, generator)[0]

    def elbo_losses(self, context: LearnerContext, observations, generator: torch.Generator | None = None):
        """(the losses, the mean of q's component z+ came from, the undetached sample z+): what learners built on
        the ELBO add terms to."""
        prior, free_bits = context.prior, context.settings.vae_free_bits
        # q may be a mixture (experts over modalities): z+ comes from one component drawn per example, and the KL
        # term is the components' weighted KL, an upper bound on the mixture's (KL is convex), as MoPoE-VAE.
        means, log_variances, weights = context.encoder.mixture(observations)
        mean, log_variance = pick_mixture_components(means, log_variances, weights, generator)
        latents = sample_diagonal_gaussian(mean, log_variance, generator)
        reconstruction = context.decoder.negative_log_likelihood(observations, latents).mean()
        component_kls = kl_to_isotropic_gaussian(means, log_variances, prior.reference_sigma)
        kl_per_dimension = (weights[..., None] * component_kls).sum(dim=1).mean(dim=0)
        kl = kl_per_dimension.sum()
        chain = prior.sample_from(prior.sample_reference(mean.shape[0], generator, mean.device),
                                  context.prior_sampler, generator, return_diagnostics="last")
        prior_latents = chain.latents
        posterior_energy, prior_energy = prior.energy(latents.detach()).mean(), prior.energy(prior_latents).mean()
        energy_gap = posterior_energy - prior_energy
        loss = reconstruction + (kl_per_dimension.clamp_min(free_bits).sum() if free_bits > 0 else kl) + energy_gap
        terms = {"decoder_loss": reconstruction, "kl_loss": kl}
        if prior.has_energy:
            # The diagnostics of a runaway energy: E at q's and at the chain's samples, their difference, and
            # |grad U| at the chain's last step (a chain that no longer follows the energy shows it first).
            terms.update(energy_loss=energy_gap, posterior_energy=posterior_energy.detach(),
                         prior_energy=prior_energy.detach(),
                         **chain_diagnostics(posterior_energy, prior_energy, prior_chain=chain))
        output = LearnerOutput(loss=loss, terms=terms, posterior_latents=latents.detach(), prior_latents=prior_latents)
        add_energy_magnitude_penalty(output, prior, context.settings.energy_magnitude_weight)
        return output, mean, latents

    def infer_latents(self, context: LearnerContext, observations, generator: torch.Generator | None = None,
                      langevin_proper: bool = False) -> torch.Tensor:
        """A draw from q(z | x) (no chain runs, so `langevin_proper` changes nothing)."""
        return context.encoder.sample(observations, generator)

    def posterior_gaussian(self, context: LearnerContext, observations, num_chains: int = 8,
                           generator: torch.Generator | None = None,
                           langevin_proper: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) itself (a mixture's moment-matched Gaussian)."""
        mean, log_variance = context.encoder(observations)
        return mean, (0.5 * log_variance).exp()


class VariationalEBMLearner(ELBOLearner):
    """The ELBO learner with an energy-based prior (see `ELBOLearner`): the variational latent EBM."""

    @classmethod
    def check_config(cls, learner: str, prior_type: str, num_labels: int | None) -> None:
        _check_gaussian_reference(learner, prior_type)
        if not _prior_class(prior_type).has_energy:
            raise ValueError(f"learner={learner!r} learns an energy-based prior: prior_type={prior_type!r} "
                             "has no energy")


__all__ = ["VariationalLearnerConfig", "ELBOLearner", "VariationalEBMLearner"]
