"""A Gaussian MLP decoder for real vectors: the default part of the modality-agnostic `LatentEBMModel`."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict

from ..layers import mlp
from ..registry import PartConfig
from ..validation import require_at_least, require_greater_than
from .base import Decoder, check_float_batch


@strict
@dataclasses.dataclass
class MLPConfig(PartConfig):
    """Settings of the MLP decoder and encoder over real vectors: `observation_dim` (2), `hidden_dim` (64),
    `num_hidden_layers` (2)."""

    observation_dim: int = 2
    hidden_dim: int = 64
    num_hidden_layers: int = 2

    def validate_sizes(self):
        require_at_least(self, ("observation_dim", "hidden_dim"))
        require_at_least(self, ("num_hidden_layers",), 0)


@strict
@dataclasses.dataclass
class GaussianMLPDecoderConfig(MLPConfig):
    """The MLP's settings plus the likelihood's std `sigma` (0.3)."""

    sigma: float = 0.3

    def validate_sigma(self):
        require_greater_than(self, ("sigma",))


class GaussianMLPDecoder(Decoder):
    r"""
    p(x | z) = N(mu(z), sigma^2 I) with an MLP mean, for observations that are real vectors (`observations` of shape
    (batch, observation_dim)).

    Args:
        latent_dim (`int`): Dimension of z.
        observation_dim (`int`, *optional*, defaults to 2): Dimension of x.
        hidden_dim (`int`, *optional*, defaults to 64): Width of the hidden layers.
        num_hidden_layers (`int`, *optional*, defaults to 2): Hidden layers (GELU).
        sigma (`float`, *optional*, defaults to 0.3): Std of the likelihood.
    """

    compilable = True
    config_class = GaussianMLPDecoderConfig

    def __init__(self, latent_dim: int, observation_dim: int = 2, hidden_dim: int = 64, num_hidden_layers: int = 2,
                 sigma: float = 0.3):
        super().__init__()
        if observation_dim < 1 or hidden_dim < 1 or num_hidden_layers < 0 or not sigma > 0:
            raise ValueError(f"GaussianMLPDecoder needs observation_dim >= 1, hidden_dim >= 1, num_hidden_layers >= 0 "
                             f"and sigma > 0; got {observation_dim}, {hidden_dim}, {num_hidden_layers}, {sigma}")
        self.observation_dim, self.sigma = observation_dim, sigma
        self.mean = mlp(latent_dim, hidden_dim, num_hidden_layers, observation_dim)

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean(latents)

    def negative_log_likelihood(self, observations: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        return (observations - self.mean(latents)).pow(2).sum(dim=1) / (2 * self.sigma**2)

    def check_observations(self, observations, check_values: bool = True) -> None:
        check_float_batch("observations", observations, (self.observation_dim,), check_values)


__all__ = ["GaussianMLPDecoder", "GaussianMLPDecoderConfig", "MLPConfig"]
