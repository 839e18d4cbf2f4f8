"""A convolutional inference network over images, the mirror of the DCGAN generator."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..decoders.image import ConvImageShapeConfig, decoder_upsampling_plan
from .base import Encoder


@strict
@dataclasses.dataclass
class ConvImageEncoderConfig(ConvImageShapeConfig):
    """Settings of the conv encoder (the model config's `encoder_config`): the generator's shape and width
    (`image_size`, `num_channels`, `base_channels`)."""


class ConvImageEncoder(Encoder):
    r"""
    Strided convolutions that halve the image down to the generator's base map, then one convolution over it to
    the mean and log-variance of q(z | x): the generator's layers in reverse, LeakyReLU(0.2) between them.

    Args:
        latent_dim (`int`), image_size (`int`), num_channels (`int`), base_channels (`int`): as the generator's.
    """

    modality = "image"
    config_class = ConvImageEncoderConfig

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

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.layers(pixel_values).flatten(1).chunk(2, dim=-1)
        return mean, log_variance


__all__ = ["ConvImageEncoder", "ConvImageEncoderConfig"]
