"""A convolutional inference network over images, the mirror of the DCGAN generator."""

import torch
from torch import nn

from ..decoders.image import decoder_upsampling_plan
from .base import Encoder


class ConvImageEncoder(Encoder):
    r"""
    Strided convolutions that halve the image down to the generator's base map, then one convolution over it to
    the mean and log-variance of q(z | x): the generator's layers in reverse, LeakyReLU(0.2) between them.

    Args:
        latent_dim (`int`), image_size (`int`), num_channels (`int`), base_channels (`int`): as the generator's.
    """

    modality = "image"

    def __init__(self, latent_dim: int, image_size: int, num_channels: int, base_channels: int):
        super().__init__()
        base_size, num_downsamplings = decoder_upsampling_plan(image_size)
        width = base_channels
        layers = [nn.Conv2d(num_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        for _ in range(num_downsamplings - 1):
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2)]
            width *= 2
        layers.append(nn.Conv2d(width, 2 * latent_dim, base_size))
        self.layers = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config) -> "ConvImageEncoder":
        return cls(latent_dim=config.latent_dim, image_size=config.image_size, num_channels=config.num_channels,
                   base_channels=config.decoder_base_channels)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.layers(pixel_values).flatten(1).chunk(2, dim=-1)
        return mean, log_variance


__all__ = ["ConvImageEncoder"]
