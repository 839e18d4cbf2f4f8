"""An MLP inference network over table rows (numeric values and one-hot categories)."""

import torch
import torch.nn.functional as F

from ..decoders.tabular import TabularConfig, split_features
from ..layers import mlp
from .base import Encoder


class TabularEncoder(Encoder):
    r"""
    q(z | x) from an MLP over a row's standardised numeric values and the one-hot codes of its categorical columns
    (the `features` layout of [`TabularDecoder`]).

    Args:
        latent_dim (`int`), num_numeric (`int`), category_sizes (`list[int]`): as the decoder's.
        hidden_dim (`int`, *optional*, defaults to 128), num_hidden_layers (`int`, *optional*, defaults to 2).
    """

    config_class = TabularConfig

    def __init__(self, latent_dim: int, num_numeric: int, category_sizes: list[int], hidden_dim: int = 128,
                 num_hidden_layers: int = 2):
        super().__init__()
        self.num_numeric, self.category_sizes = num_numeric, list(category_sizes)
        self.layers = mlp(num_numeric + sum(category_sizes), hidden_dim, num_hidden_layers, 2 * latent_dim)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        numeric, codes = split_features(features, self.num_numeric)
        one_hots = [F.one_hot(codes[:, column], size).to(numeric.dtype)
                    for column, size in enumerate(self.category_sizes)]
        mean, log_variance = self.layers(torch.cat([numeric, *one_hots], dim=1)).chunk(2, dim=-1)
        return mean, log_variance


__all__ = ["TabularEncoder"]
