"""Diagonal Gaussians, the one implementation of each formula the encoders, learners and metrics share."""

import math

import torch


def sample_diagonal_gaussian(mean: torch.Tensor, log_variance: torch.Tensor,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """A reparameterised draw mean + exp(log_variance / 2) * noise (differentiable in mean and log_variance)."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * log_variance).exp() * noise


def diagonal_gaussian_log_density(latents: torch.Tensor, mean: torch.Tensor,
                                  log_variance: torch.Tensor) -> torch.Tensor:
    """log N(latents; mean, diag(exp(log_variance))), summed over the last dimension."""
    return -0.5 * ((latents - mean).pow(2) / log_variance.exp() + log_variance + math.log(2 * math.pi)).sum(dim=-1)


def kl_to_isotropic_gaussian(mean: torch.Tensor, log_variance: torch.Tensor, sigma: float) -> torch.Tensor:
    """KL(N(mean, diag(exp(log_variance))) || N(0, sigma^2 I)) per dimension, same shape as `mean`."""
    variance = sigma**2
    return 0.5 * ((mean.pow(2) + log_variance.exp()) / variance - 1 - log_variance
                  + torch.log(torch.tensor(variance)))


def pick_mixture_components(means: torch.Tensor, log_variances: torch.Tensor, weights: torch.Tensor,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One component per example of a diagonal-Gaussian mixture, drawn by `weights` (batch, K): its (mean,
    log_variance), each (batch, dim). With K = 1 nothing is drawn, so single Gaussians use no extra randomness."""
    if weights.shape[1] == 1:
        return means[:, 0], log_variances[:, 0]
    picks = torch.multinomial(weights, 1, generator=generator)[:, 0]
    rows = torch.arange(means.shape[0], device=means.device)
    return means[rows, picks], log_variances[rows, picks]


def mixture_log_density(latents: torch.Tensor, means: torch.Tensor, log_variances: torch.Tensor,
                        weights: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(latents; mean_k, diag(exp(log_variance_k))) per example; components of weight 0 drop out."""
    component_log_densities = diagonal_gaussian_log_density(latents[:, None], means, log_variances)
    return torch.logsumexp(component_log_densities + weights.log(), dim=1)


__all__ = ["sample_diagonal_gaussian", "diagonal_gaussian_log_density", "kl_to_isotropic_gaussian",
           "pick_mixture_components", "mixture_log_density"]
