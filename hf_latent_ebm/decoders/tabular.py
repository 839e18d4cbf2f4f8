"""A decoder for tables: numeric columns with a Gaussian likelihood, categorical columns with a categorical one."""

import dataclasses

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn

from ..layers import mlp
from ..registry import PartConfig
from ..validation import require_at_least, require_greater_than
from .base import Decoder, check_float_batch


@strict
@dataclasses.dataclass
class TabularConfig(PartConfig):
    """Settings of the tabular decoder and encoder: the columns (`num_numeric` numeric ones, one categorical one per
    entry of `category_sizes`, each >= 2 categories) and the MLP (`hidden_dim` 128, `num_hidden_layers` 2)."""

    num_numeric: int
    category_sizes: list[int]
    hidden_dim: int = 128
    num_hidden_layers: int = 2

    def validate_columns(self):
        if self.num_numeric < 0 or any(size < 2 for size in self.category_sizes) or \
                self.num_numeric + len(self.category_sizes) == 0:
            raise ValueError(f"a table needs columns, and every categorical column >= 2 categories; got "
                             f"num_numeric={self.num_numeric}, category_sizes={self.category_sizes}")
        require_at_least(self, ("hidden_dim",))
        require_at_least(self, ("num_hidden_layers",), 0)


@strict
@dataclasses.dataclass
class TabularDecoderConfig(TabularConfig):
    """The table's settings plus the numeric columns' likelihood std `sigma` (0.5)."""

    sigma: float = 0.5

    def validate_sigma(self):
        require_greater_than(self, ("sigma",))


def split_features(features: torch.Tensor, num_numeric: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(standardised numeric values, integer category codes) from the `features` layout of `TabularPreprocessor`."""
    return features[:, :num_numeric], features[:, num_numeric:].long()


class TabularDecoder(Decoder):
    r"""
    p(x | z) over a row of `num_numeric` standardised numeric columns, N(mu(z), sigma^2) each, and one categorical
    column per entry of `category_sizes`, softmax(logits(z)) each, from one MLP trunk. A row is one float tensor,
    `features` of shape (batch, num_numeric + len(category_sizes)): the numeric values first, then the category
    codes (as floats); `hf_latent_ebm.data.TabularPreprocessor` makes it from raw rows.

    Args:
        latent_dim (`int`): Dimension of z.
        num_numeric (`int`): Numeric columns.
        category_sizes (`list[int]`): Categories of each categorical column.
        hidden_dim (`int`, *optional*, defaults to 128): Width of the trunk.
        num_hidden_layers (`int`, *optional*, defaults to 2): Hidden layers of the trunk (GELU).
        sigma (`float`, *optional*, defaults to 0.5): Std of the numeric columns' likelihood (in standard units).
    """

    input_names = ("features",)
    config_class = TabularDecoderConfig

    def __init__(self, latent_dim: int, num_numeric: int, category_sizes: list[int], hidden_dim: int = 128,
                 num_hidden_layers: int = 2, sigma: float = 0.5):
        super().__init__()
        if num_numeric < 0 or any(size < 2 for size in category_sizes) or num_numeric + len(category_sizes) == 0:
            raise ValueError(f"a table needs columns, and every categorical column >= 2 categories; got "
                             f"num_numeric={num_numeric}, category_sizes={category_sizes}")
        self.num_numeric, self.category_sizes, self.sigma = num_numeric, list(category_sizes), sigma
        self.trunk = mlp(latent_dim, hidden_dim, num_hidden_layers)
        self.head = nn.Linear(hidden_dim if num_hidden_layers else latent_dim, num_numeric + sum(category_sizes))

    def _outputs(self, latents: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outputs = self.head(self.trunk(latents))
        return outputs[:, :self.num_numeric], list(outputs[:, self.num_numeric:].split(self.category_sizes, dim=1))

    def negative_log_likelihood(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        numeric, codes = split_features(features, self.num_numeric)
        means, logits = self._outputs(latents)
        nll = (numeric - means).pow(2).sum(dim=1) / (2 * self.sigma**2)
        for column, column_logits in enumerate(logits):
            nll = nll + F.cross_entropy(column_logits, codes[:, column], reduction="none")
        return nll

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows in the `features` layout: the numeric means and each column's most likely category."""
        means, logits = self._outputs(latents)
        return torch.cat([means] + [column.argmax(dim=1, keepdim=True).float() for column in logits], dim=1)

    def check_observations(self, features, check_values: bool = True) -> None:
        check_float_batch("features", features, (self.num_numeric + len(self.category_sizes),), check_values)
        if check_values and self.category_sizes:
            codes = features[:, self.num_numeric:]
            sizes = torch.tensor(self.category_sizes, dtype=codes.dtype, device=codes.device)
            if not bool(((codes == codes.round()) & (codes >= 0) & (codes < sizes)).all()):
                raise ValueError(f"features: the categorical columns must hold category codes in [0, size) for sizes "
                                 f"{self.category_sizes}")


__all__ = ["TabularDecoder", "split_features", "TabularConfig", "TabularDecoderConfig"]
