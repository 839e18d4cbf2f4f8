"""The fixed Gaussian prior of alternating back-propagation (Han et al. 2017)."""

import torch

from ..samplers.base import Sampler, SamplerOutput
from .base import Prior, PriorConfig


class GaussianPrior(Prior):
    r"""
    p(z) = N(0, sigma^2 I): no parameters and no energy, so its reference draws are exact samples and no prior chain
    runs. The baseline an energy-based prior is compared against.

    Args:
        latent_dim (`int`): Dimension of z.
        reference_sigma (`float`): Std of the prior.
    """

    has_energy = False

    @classmethod
    def from_config(cls, config: PriorConfig, latent_dim: int, num_labels: int | None = None) -> "GaussianPrior":
        return cls(latent_dim=latent_dim, reference_sigma=config.sigma)

    @classmethod
    def describe(cls, config: PriorConfig, sampler_config=None) -> str:
        return f"the fixed Gaussian prior N(0, {config.sigma}^2) (the alternating back-propagation baseline)"

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.new_zeros(latents.shape[0])

    def potential(self, latents: torch.Tensor) -> torch.Tensor:
        return self.reference_potential(latents)

    def sample_from(self, start: torch.Tensor, sampler: Sampler, generator: torch.Generator | None = None,
                    return_diagnostics: bool = False) -> torch.Tensor | SamplerOutput:
        if return_diagnostics:
            return SamplerOutput(start, start.new_zeros(0), start.new_zeros(0))
        return start

    def log_partition(self, num_samples: int = 100_000, generator: torch.Generator | None = None) -> float:
        return 0.0


__all__ = ["GaussianPrior"]
