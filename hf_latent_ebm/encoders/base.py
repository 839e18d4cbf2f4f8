"""The encoder interface: an amortised q(z | x), a diagonal Gaussian or a mixture of them."""

import torch
from torch import nn

from ..distributions import diagonal_gaussian_log_density, pick_mixture_components, sample_diagonal_gaussian
from ..registry import Registry


class Encoder(nn.Module):
    r"""
    q(z | x) = N(mean(x), diag(exp(log_variance(x)))) for a batch of one kind of observation (what the matching
    decoder reads). `modality` says which model config family may name it, and `config_class` declares its settings
    (read from the model config's `encoder_config`), as for decoders.

    An encoder whose q is a mixture of diagonal Gaussians (experts over several modalities) overrides `mixture`
    and `log_density`; `forward` then gives the mixture's moment-matched Gaussian. The learners use `mixture`,
    `sample` and `log_density`, so they treat both kinds alike.
    """

    modality: str | None = None
    config_class: type | None = None

    def forward(self, observations) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_variance), each (batch, latent_dim)."""
        raise NotImplementedError

    def mixture(self, observations) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q as a mixture: component means and log-variances (batch, K, latent_dim) and weights (batch, K); here
        the one Gaussian of `forward`."""
        mean, log_variance = self(observations)
        return mean[:, None], log_variance[:, None], mean.new_ones(mean.shape[0], 1)

    def log_density(self, observations, latents: torch.Tensor) -> torch.Tensor:
        """log q(latents | x), one value per example."""
        return diagonal_gaussian_log_density(latents, *self(observations))

    def sample(self, observations, generator: torch.Generator | None = None) -> torch.Tensor:
        """One reparameterised draw z ~ q(z | x) per example (a mixture picks a component first)."""
        return sample_diagonal_gaussian(*pick_mixture_components(*self.mixture(observations), generator), generator)


# Encoders by name, beside the base class so that the experts encoder builds registered parts without importing
# the package that registers it.
ENCODERS = Registry("encoder", Encoder)

__all__ = ["ENCODERS", "Encoder"]
