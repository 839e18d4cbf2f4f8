"""The maximum-likelihood learner of Pang et al. 2020, shared by `forward`, the HF Trainer path and the CLI loop."""

from dataclasses import dataclass

import torch
from torch import nn

from .langevin import LangevinSampler


@dataclass
class MLELosses:
    """
    Args:
        loss (`torch.Tensor`): decoder_loss + energy_loss; back-propagating it gives both MLE gradients.
        decoder_loss (`torch.Tensor`): Mean -log p(x | z+) over the batch (trains the decoder).
        energy_loss (`torch.Tensor`): mean E(z+) - mean E(z-) (trains the energy).
        posterior_latents (`torch.Tensor`): z+ from the posterior chain.
        prior_latents (`torch.Tensor`): z- from the prior chain.
    """

    loss: torch.Tensor
    decoder_loss: torch.Tensor
    energy_loss: torch.Tensor
    posterior_latents: torch.Tensor
    prior_latents: torch.Tensor


def posterior_potential(prior: nn.Module, decoder: nn.Module, observations: torch.Tensor, chain_prior: str = "model"):
    """U(z) = -log p(x, z) up to constants: the potential of the posterior chain and the anomaly score. With
    chain_prior="reference" the prior term is p0's alone (see `posterior_chain_prior` in the config)."""
    prior_term = prior.potential if chain_prior == "model" else prior.reference_potential
    return lambda latents: decoder.negative_log_likelihood(observations, latents) + prior_term(latents)


def run_prior_chain(prior: nn.Module, sampler: LangevinSampler, start: torch.Tensor,
                    generator: torch.Generator | None = None, return_diagnostics: bool = False):
    """The prior chain on U = -log p(z), with the prior's hand-written gradient when it offers one."""
    analytic = prior.potential_and_grad if getattr(prior, "analytic_gradient", False) else None
    return sampler(prior.potential, start, generator, return_diagnostics=return_diagnostics,
                   potential_and_grad=analytic)


def mle_losses(
    prior: nn.Module,
    decoder: nn.Module,
    observations: torch.Tensor,
    prior_sampler: LangevinSampler,
    posterior_sampler: LangevinSampler,
    generator: torch.Generator | None = None,
    posterior_chain_prior: str = "model",
) -> MLELosses:
    r"""
    One MLE update's losses: z+ ~ p(z | x) and z- ~ p(z) by short-run Langevin from p0, then

    - the decoder gradient is E_{z+}[grad -log p(x | z+)], from `decoder_loss`;
    - the prior gradient is E_{z+}[grad E(z+)] - E_{z-}[grad E(z-)], from `energy_loss`.

    Both chains' outputs are detached, so `decoder_loss` only reaches decoder parameters and `energy_loss` only
    prior parameters: one optimizer with two parameter groups (each with its own learning rate) trains both.
    """
    batch_size, device = observations.shape[0], observations.device
    posterior_start = prior.sample_reference(batch_size, generator, device)
    prior_start = prior.sample_reference(batch_size, generator, device)
    posterior_latents = posterior_sampler(posterior_potential(prior, decoder, observations, posterior_chain_prior),
                                          posterior_start, generator)
    prior_latents = prior_start if prior.exact_sampling else run_prior_chain(prior, prior_sampler, prior_start,
                                                                             generator)
    decoder_loss = decoder.negative_log_likelihood(observations, posterior_latents).mean()
    energy_loss = prior.energy(posterior_latents).mean() - prior.energy(prior_latents).mean()
    return MLELosses(
        loss=decoder_loss + energy_loss,
        decoder_loss=decoder_loss,
        energy_loss=energy_loss,
        posterior_latents=posterior_latents,
        prior_latents=prior_latents,
    )


def elbo_losses(encoder: nn.Module, prior: nn.Module, decoder: nn.Module, observations: torch.Tensor,
                generator: torch.Generator | None = None, free_bits: float = 0.0,
                prior_sampler: LangevinSampler | None = None) -> MLELosses:
    r"""
    A VAE's loss with an inference network q(z | x) and one reparameterised sample z+ ~ q: the negative ELBO
    -log p(x | z+) + KL(q || p0) for the encoder and decoder, and for an energy-based prior
    p(z) = exp(-E(z)) p0(z) / Z the maximum-likelihood loss E(z+) - E(z-) of the prior on q's samples, z- from the
    prior chain (the gradient of log Z). For the Gaussian prior E = 0 and this is the plain VAE; with an energy it is
    the variational latent-EBM learner: the prior learns q's aggregate posterior, which the ELBO-optimal prior is,
    and samples from it instead of from p0. z+ enters the energy detached. The full ELBO would also pull q towards
    low energy through E(z+), and on KJV that ran off: the energy fell where q went and q followed (energy loss
    1.8e5 after 420 steps of batch 32, `vae_free_bits` 0.25, prior step 0.2); the Gaussian reference term
    KL(q || p0) is the encoder's prior term here.

    Returned in the learner's form: `decoder_loss` is the reconstruction term, `energy_loss` the prior's part,
    KL(q || p0) + mean E(z+) - mean E(z-) (the VAE's KL), `posterior_latents` z+ and `prior_latents` z-. With
    `free_bits` > 0 the loss counts each latent dimension's batch-averaged KL(q || p0) as at least `free_bits` nats
    (free bits, as the FB-VAE baseline); `energy_loss` keeps the true KL.
    """
    mean, log_variance = encoder(observations)
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    latents = mean + (0.5 * log_variance).exp() * noise
    reconstruction = decoder.negative_log_likelihood(observations, latents).mean()
    prior_variance = prior.reference_sigma**2
    kl_per_dimension = 0.5 * ((mean.pow(2) + log_variance.exp()) / prior_variance - 1 - log_variance
                              + torch.log(torch.tensor(prior_variance))).mean(dim=0)
    kl = kl_per_dimension.sum()
    prior_start = prior.sample_reference(mean.shape[0], generator, mean.device)
    if prior.exact_sampling:
        prior_latents = prior_start
    elif prior_sampler is None:
        raise ValueError("an energy-based prior needs prior_sampler for the gradient of log Z")
    else:
        prior_latents = run_prior_chain(prior, prior_sampler, prior_start, generator)
    energy_gap = prior.energy(latents.detach()).mean() - prior.energy(prior_latents).mean()
    loss = reconstruction + (kl_per_dimension.clamp_min(free_bits).sum() if free_bits > 0 else kl) + energy_gap
    return MLELosses(loss=loss, decoder_loss=reconstruction, energy_loss=kl + energy_gap,
                     posterior_latents=latents.detach(), prior_latents=prior_latents)


def build_optimizer(model) -> torch.optim.Adam:
    """Adam with two parameter groups, prior and decoder, at the config's learning rates and betas."""
    config = model.config
    groups = [
        {"params": list(model.prior.parameters()), "lr": config.prior_learning_rate, "name": "prior"},
        {"params": list(model.decoder.parameters()), "lr": config.decoder_learning_rate, "name": "decoder"},
    ]
    encoder = getattr(model, "encoder", None)
    if encoder is not None:  # the inference network learns at the decoder's rate
        groups.append({"params": list(encoder.parameters()), "lr": config.decoder_learning_rate, "name": "encoder"})
    groups = [group for group in groups if group["params"]]  # a Gaussian prior has no parameters
    return torch.optim.Adam(groups, betas=(config.adam_beta1, config.adam_beta2))


def build_lr_scheduler(optimizer: torch.optim.Optimizer, config) -> torch.optim.lr_scheduler.LambdaLR:
    """Step-wise exponential decay per group: lr * decay ** (step // lr_decay_steps), as the paper's per-epoch decay."""
    decays = {"prior": config.prior_lr_decay, "decoder": config.decoder_lr_decay, "encoder": config.decoder_lr_decay}
    lambdas = [
        (lambda step, decay=decays[group["name"]]: decay ** (step // config.lr_decay_steps))
        for group in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of parameters holding NaN or inf (checked before every checkpoint write)."""
    return [name for name, param in model.named_parameters() if not torch.isfinite(param).all()]


__all__ = ["MLELosses", "mle_losses", "run_prior_chain", "elbo_losses", "posterior_potential", "build_optimizer", "build_lr_scheduler",
           "nonfinite_parameters"]
