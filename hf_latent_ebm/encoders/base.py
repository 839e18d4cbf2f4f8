"""The encoder interface: an amortised diagonal-Gaussian q(z | x)."""

import torch
from torch import nn

from ..distributions import sample_diagonal_gaussian


class Encoder(nn.Module):
    r"""
    q(z | x) = N(mean(x), diag(exp(log_variance(x)))) for a batch of one kind of observation (what the matching
    decoder reads). `modality` says which model config family's fields `from_config` reads, as for decoders;
    generic configs build any encoder from their `encoder_kwargs`.
    """

    modality: str | None = None

    @classmethod
    def from_config(cls, config) -> "Encoder":
        """Build from a modality config's fields (encoders with a `modality` implement it)."""
        raise NotImplementedError(f"{cls.__name__} is built from encoder_kwargs by a generic config")

    def forward(self, observations) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_variance), each (batch, latent_dim)."""
        raise NotImplementedError

    def sample(self, observations, generator: torch.Generator | None = None) -> torch.Tensor:
        """One reparameterised draw z ~ q(z | x) per example."""
        return sample_diagonal_gaussian(*self(observations), generator)


__all__ = ["Encoder"]
