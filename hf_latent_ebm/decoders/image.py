"""DCGAN-style image generator with a Gaussian likelihood p(x | z) = N(g(z), sigma^2 I)."""

import torch
from torch import nn

from ..configuration_latent_ebm import decoder_upsampling_plan


class ConvImageDecoder(nn.Module):
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

    def negative_log_likelihood(self, pixel_values: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) up to the normaliser: |x - g(z)|^2 / (2 sigma^2), one value per example."""
        squared_error = (pixel_values - self(latents)).pow(2).flatten(1).sum(dim=1)
        return squared_error / (2 * self.sigma**2)


__all__ = ["ConvImageDecoder"]
