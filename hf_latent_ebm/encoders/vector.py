"""An MLP inference network over real vectors, the default encoder of `LatentEBMModel`."""

import torch

from ..decoders.vector import MLPConfig
from ..layers import mlp
from .base import Encoder


class MLPEncoder(Encoder):
    r"""
    q(z | x) from an MLP over `observations` of shape (batch, observation_dim).

    Args:
        latent_dim (`int`): Dimension of z.
        observation_dim (`int`, *optional*, defaults to 2): Dimension of x.
        hidden_dim (`int`, *optional*, defaults to 64): Width of the hidden layers.
        num_hidden_layers (`int`, *optional*, defaults to 2): Hidden layers (GELU).
    """

    config_class = MLPConfig

    def __init__(self, latent_dim: int, observation_dim: int = 2, hidden_dim: int = 64, num_hidden_layers: int = 2):
        super().__init__()
        self.layers = mlp(observation_dim, hidden_dim, num_hidden_layers, 2 * latent_dim)

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.layers(observations).chunk(2, dim=-1)
        return mean, log_variance


__all__ = ["MLPEncoder"]
