"""A bottom-up ladder inference network q(z_1, .., z_L | x) for the hierarchical prior (Cui, Wu & Han, ICCV 2023)."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..layers import mlp
from ..validation import check_layer_sizes, require_at_least
from .image import ConvImageEncoder, ConvImageEncoderConfig


@strict
@dataclasses.dataclass
class LadderImageEncoderConfig(ConvImageEncoderConfig):
    """The conv encoder's settings plus the ladder's: `layer_sizes` (z_1 .. z_L, bottom to top, as the prior's;
    defaults to `[8, 8]`) and the width of each rung's features (`hidden_dim`, 64)."""

    layer_sizes: list[int] = dataclasses.field(default_factory=lambda: [8, 8])
    hidden_dim: int = 64

    def validate_ladder(self):
        check_layer_sizes(self.layer_sizes)
        require_at_least(self, ("hidden_dim",))


class LadderImageEncoder(ConvImageEncoder):
    r"""
    q(z | x) = prod_i N(z_i; mu_i(r_i), diag exp(log_var_i(r_i))) with bottom-up features r_1 = a_1(c(x)),
    r_i = a_i(r_{i-1}): the conv stack of `ConvImageEncoder` (c), then one rung per layer, so higher layers see
    more processed features of x (the ladder of the ICCV 2023 paper). `forward` gives the layers' means and
    log-variances concatenated in z's order, so the learners treat it as any diagonal-Gaussian encoder.

    Args:
        latent_dim (`int`): Dimension of z, the sum of `layer_sizes`.
        image_size, num_channels, base_channels: As `ConvImageEncoder`'s.
        layer_sizes (`list[int]`): Dimensions of z_1 .. z_L, bottom to top.
        hidden_dim (`int`): Width of the rungs' features.
    """

    config_class = LadderImageEncoderConfig

    def __init__(self, latent_dim: int, image_size: int, num_channels: int, base_channels: int,
                 layer_sizes: list[int], hidden_dim: int = 64):
        check_layer_sizes(layer_sizes, latent_dim, "encoder_config.layer_sizes")
        # The conv stack's output (2 * hidden_dim values) is the first rung's input.
        super().__init__(hidden_dim, image_size, num_channels, base_channels)
        self.layer_sizes = list(layer_sizes)
        widths = [2 * hidden_dim] + [hidden_dim] * len(layer_sizes)
        self.rungs = nn.ModuleList(mlp(widths[i], hidden_dim, 0, hidden_dim) for i in range(len(layer_sizes)))
        self.heads = nn.ModuleList(nn.Linear(hidden_dim, 2 * size) for size in layer_sizes)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, means, log_variances = self.layers(pixel_values).flatten(1), [], []
        for rung, head in zip(self.rungs, self.heads):
            features = nn.functional.gelu(rung(features))
            mean, log_variance = head(features).chunk(2, dim=-1)
            means.append(mean)
            log_variances.append(log_variance)
        return torch.cat(means, dim=1), torch.cat(log_variances, dim=1)


__all__ = ["LadderImageEncoder", "LadderImageEncoderConfig"]
