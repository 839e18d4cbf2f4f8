"""DCGAN-style image generator with a Gaussian likelihood p(x | z) = N(g(z), sigma^2 I)."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..registry import PartConfig
from ..validation import require_at_least, require_greater_than
from .base import Decoder, check_float_batch


def decoder_upsampling_plan(image_size: int) -> tuple[int, int]:
    """Return (base_size, num_upsamplings) for a DCGAN stack that doubles base_size up to image_size.

    28 -> (7, 2) and 32 -> (4, 3): the transposed-conv generator starts from a base_size x base_size map
    (first layer kernel = base_size) and doubles it num_upsamplings times.
    """
    base_size, num_upsamplings = image_size, 0
    while base_size % 2 == 0 and base_size // 2 >= 4:
        base_size //= 2
        num_upsamplings += 1
    if not (4 <= base_size <= 7) or num_upsamplings == 0:
        raise ValueError(
            f"image_size must be base * 2**n with base in 4..7 and n >= 1 (e.g. 28, 32, 64); got {image_size}"
        )
    return base_size, num_upsamplings


@strict
@dataclasses.dataclass
class ConvImageShapeConfig(PartConfig):
    """
    The image shape and width the DCGAN generator and its mirrored encoder share (the image model's config supplies
    `image_size` and `num_channels` from its own fields).

    Args:
        image_size (`int`, defaults to 28): Image side; base * 2**n with base in 4..7 (28, 32, 64, ...).
        num_channels (`int`, defaults to 1): Image channels.
        base_channels (`int`, defaults to 16): `ngf`; the widest layer has `ngf * 2**n` channels.
    """

    image_size: int = 28
    num_channels: int = 1
    base_channels: int = 16

    def validate_shape(self):
        decoder_upsampling_plan(self.image_size)
        require_at_least(self, ("num_channels", "base_channels"))


@strict
@dataclasses.dataclass
class ConvImageDecoderConfig(ConvImageShapeConfig):
    """Settings of the DCGAN generator (the model config's `decoder_config`): the shape and width, and `sigma`
    (defaults to 0.3), the std of the Gaussian likelihood p(x | z)."""

    sigma: float = 0.3

    def validate_sigma(self):
        require_greater_than(self, ("sigma",))


class ConvImageDecoder(Decoder):
    r"""
    Transposed-conv generator of Pang et al. 2020: z -> (ngf * 2**n, base, base) -> ... -> (C, H, W), LeakyReLU(0.2)
    between layers and Tanh at the output, so images lie in [-1, 1].

    Args:
        latent_dim (`int`): Dimension of z.
        image_size (`int`): Output side (28 -> base 7 with 2 upsamplings; 32 -> base 4 with 3).
        num_channels (`int`): Output channels.
        base_channels (`int`): `ngf`.
        sigma (`float`): Std of the Gaussian likelihood.
    """

    input_names = ("pixel_values",)
    modality = "image"
    compilable = True
    config_class = ConvImageDecoderConfig

    def __init__(self, latent_dim: int, image_size: int, num_channels: int, base_channels: int, sigma: float):
        super().__init__()
        self.sigma = sigma
        self.image_shape = (num_channels, image_size, image_size)
        base_size, num_upsamplings = decoder_upsampling_plan(image_size)
        width = base_channels * 2**num_upsamplings
        layers = [nn.ConvTranspose2d(latent_dim, width, base_size, 1, 0), nn.LeakyReLU(0.2)]
        for _ in range(num_upsamplings - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.LeakyReLU(0.2)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, num_channels, 4, 2, 1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.layers(latents[:, :, None, None])

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """g(z): images in [-1, 1] of shape (N, C, H, W)."""
        return self(latents)

    def negative_log_likelihood(self, pixel_values: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) up to the normaliser: |x - g(z)|^2 / (2 sigma^2), one value per example."""
        squared_error = (pixel_values - self(latents)).pow(2).flatten(1).sum(dim=1)
        return squared_error / (2 * self.sigma**2)

    def check_observations(self, pixel_values, check_values: bool = True) -> None:
        """A finite float batch of shape (batch, C, H, W) in [-1, 1]."""
        check_float_batch("pixel_values", pixel_values, self.image_shape, check_values)
        if check_values:
            low, high = pixel_values.min().item(), pixel_values.max().item()
            if low < -1 - 1e-4 or high > 1 + 1e-4:
                raise ValueError(f"pixel_values must lie in [-1, 1], got values in [{low:.3f}, {high:.3f}] "
                                 "(scale uint8 images with x / 127.5 - 1)")


__all__ = ["ConvImageDecoder", "ConvImageDecoderConfig", "ConvImageShapeConfig", "decoder_upsampling_plan"]
