"""A ladder (multi-layer) image generator for the hierarchical prior (Cui, Wu & Han 2023): x from the bottom layer
z_1, each layer above conditioning the one below."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..layers import mlp
from ..validation import check_layer_sizes, require_at_least
from .image import ConvImageDecoder, ConvImageDecoderConfig


@strict
@dataclasses.dataclass
class LadderImageDecoderConfig(ConvImageDecoderConfig):
    """
    The DCGAN generator's settings (`ConvImageDecoderConfig`) plus the ladder's: `layer_sizes` (z_1 .. z_L, bottom
    to top, as the hierarchical prior's `layer_sizes`, defaults to `[8, 8]`), and the width and depth of the MLP of
    each rung (`hidden_dim` 64, `num_hidden_layers` 1).
    """

    layer_sizes: list[int] = dataclasses.field(default_factory=lambda: [8, 8])
    hidden_dim: int = 64
    num_hidden_layers: int = 1

    def validate_ladder(self):
        check_layer_sizes(self.layer_sizes)
        require_at_least(self, ("hidden_dim",))
        require_at_least(self, ("num_hidden_layers",), 0)


class LadderImageDecoder(ConvImageDecoder):
    r"""
    h_L = a(z_L), h_i = a_i([h_{i+1}, z_i]) for i = L-1 .. 1, x = g(h_1) + N(0, sigma^2 I): the top layer sets the
    coarse content and each lower layer refines it (the paper's [z_i, h_{i+1}] input; its code adds instead), g being
    the DCGAN generator of `ConvImageDecoder` on the `hidden_dim`-dimensional h_1 (so scoring, decoding and the input
    checks are that generator's).

    Args:
        latent_dim (`int`): Dimension of z, the sum of `layer_sizes`.
        image_size, num_channels, base_channels, sigma: As `ConvImageDecoder`'s.
        layer_sizes (`list[int]`): Dimensions of z_1 .. z_L, bottom to top.
        hidden_dim, num_hidden_layers (`int`): Each rung's MLP.
    """

    config_class = LadderImageDecoderConfig
    compilable = True  # the compiled chains equal the eager ones (tests/test_fast_path.py)

    def __init__(self, latent_dim: int, image_size: int, num_channels: int, base_channels: int, sigma: float,
                 layer_sizes: list[int], hidden_dim: int = 64, num_hidden_layers: int = 1):
        check_layer_sizes(layer_sizes, latent_dim, "decoder_config.layer_sizes")
        super().__init__(hidden_dim, image_size, num_channels, base_channels, sigma)
        self.layer_sizes = list(layer_sizes)
        self.top = mlp(layer_sizes[-1], hidden_dim, num_hidden_layers, hidden_dim)
        # rungs[i] makes h_{i+1} (0-based layer i) from h above and z_i.
        self.rungs = nn.ModuleList(mlp(hidden_dim + size, hidden_dim, num_hidden_layers, hidden_dim)
                                   for size in layer_sizes[:-1])

    def top_down(self, latents: torch.Tensor) -> torch.Tensor:
        """h_1, the generator's input, from all layers."""
        layers = latents.split(self.layer_sizes, dim=1)
        hidden = nn.functional.gelu(self.top(layers[-1]))
        for index in reversed(range(len(self.rungs))):
            hidden = nn.functional.gelu(self.rungs[index](torch.cat([hidden, layers[index]], dim=1)))
        return hidden

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return super().forward(self.top_down(latents))


__all__ = ["LadderImageDecoder", "LadderImageDecoderConfig"]
