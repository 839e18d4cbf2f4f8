"""The prior interface: an energy E(z) tilting a Gaussian reference density p0(z) = N(0, sigma^2 I)."""

import dataclasses
import math

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..registry import PartConfig
from ..samplers.base import Sampler, SamplerOutput


@strict
@dataclasses.dataclass
class PriorConfig(PartConfig):
    """
    Settings every prior has (the model config's `prior_config`).

    Args:
        sigma (`float`, *optional*, defaults to 1.0): Std of the Gaussian reference density p0(z), also the std of
            the chains' initial state (the former `prior_sigma`).
    """

    sigma: float = 1.0

    def validate_sigma(self):
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


class Prior(nn.Module):
    r"""
    p(z) = exp(-E(z)) p0(z) / Z over a `latent_dim`-dimensional z, with p0 = N(0, reference_sigma^2 I) (sign
    convention: low energy = likely, Langevin descends the potential U(z) = E(z) - log p0(z)).

    A prior samples itself: `sample_from(start, sampler)` runs the prior chain from draws of p0, or, for a prior
    without an energy (`has_energy = False`, p = p0), returns the draws, which are already exact samples. A prior
    may declare `analytic_gradient = True` and implement `potential_and_grad`, which the chain then uses instead
    of autograd. Subclasses implement `energy` and `from_config` and declare their settings as `config_class` (a
    `PriorConfig` subclass, the model config's `prior_config`); an energy with several outputs (one per class,
    say) reduces them to one value per row in `energy`.

    Args:
        latent_dim (`int`): Dimension of z.
        reference_sigma (`float`): Std of p0, which is also where every chain starts.
    """

    config_class: type[PriorConfig] = PriorConfig
    has_energy: bool = True
    # Whether p0 is N(0, reference_sigma^2 I), the closed form the variational learners' KL(q || p0) assumes; a
    # prior with another reference density (a spike-and-slab mixture, say) sets False and overrides the
    # `reference_*` methods and `sample_reference`.
    gaussian_reference: bool = True
    analytic_gradient: bool = False
    # Whether the energy traces into one torch.compile graph (see `Decoder.compilable`); MLP energies do.
    compilable: bool = True
    # The one learner that can train this prior, where only one can (the config refuses another), else None.
    required_learner: str | None = None

    def __init__(self, latent_dim: int, reference_sigma: float):
        super().__init__()
        self.latent_dim = latent_dim
        self.reference_sigma = reference_sigma
        # Not saved: it only carries the module's device for draws from p0 (a prior may have no parameters).
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    @classmethod
    def from_config(cls, config: PriorConfig, latent_dim: int, num_labels: int | None = None) -> "Prior":
        """Build the prior from its typed `config` and the model's latent dimension (and number of classes, which
        priors over a label read)."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config")

    @classmethod
    def describe(cls, config: PriorConfig, sampler_config=None) -> str:
        """The prior in a phrase, for model cards ("... latent with <this>."), from its typed config and the
        sampler's (whose `prior_steps`, where it has them, say how the prior is sampled)."""
        steps = getattr(sampler_config, "prior_steps", None)
        chain = f"{steps}-step short-run Langevin" if steps is not None else "its prior chain"
        return f"a learned energy-based prior p(z) = exp(-E(z)) N(0, {config.sigma}^2) / Z, sampled by {chain}"

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        """E(z), one value per row."""
        raise NotImplementedError

    def energy_magnitude(self, latents: torch.Tensor) -> torch.Tensor:
        """The mean square of the energy's outputs per row, E(z)^2: what a magnitude penalty (Du & Mordatch 2019)
        keeps finite. A prior whose energy has several outputs penalises each of them."""
        return self.energy(latents).pow(2)

    def reference_potential(self, latents: torch.Tensor) -> torch.Tensor:
        """-log p0(z) up to a constant: |z|^2 / (2 sigma^2)."""
        return latents.pow(2).sum(dim=-1) / (2 * self.reference_sigma**2)

    def reference_log_density(self, latents: torch.Tensor) -> torch.Tensor:
        """log p0(z), normalised."""
        dim = latents.shape[-1]
        return -self.reference_potential(latents) - dim * (math.log(self.reference_sigma) + 0.5 * math.log(2 * math.pi))

    def potential(self, latents: torch.Tensor) -> torch.Tensor:
        """-log p(z) up to log Z: E(z) + |z|^2 / (2 sigma^2)."""
        return self.energy(latents) + self.reference_potential(latents)

    def potential_and_grad(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U(z), grad U(z)) without autograd; priors that declare `analytic_gradient = True` implement it."""
        raise NotImplementedError(f"{type(self).__name__} declares no analytic gradient")

    def sample_reference(self, batch_size: int, generator: torch.Generator | None = None,
                         device: torch.device | None = None) -> torch.Tensor:
        """Draws from p0, the chains' starting distribution."""
        device = device if device is not None else self._device_anchor.device
        return self.reference_sigma * torch.randn((batch_size, self.latent_dim), generator=generator, device=device)

    def posterior_start(self, batch_size: int, generator: torch.Generator | None = None,
                        device: torch.device | None = None) -> torch.Tensor:
        """Where posterior chains start: draws from p0, as in Pang et al. 2020. A prior whose papers start inference
        elsewhere (the spike-and-slab prior of Li & Han 2022 starts it at z = 0) overrides this."""
        return self.sample_reference(batch_size, generator, device)

    def on_training_step(self) -> None:
        """Called by the model once per training forward pass (training mode, gradients on), before the update. A
        prior with a schedule over updates (gradual sparsification, say) advances it here, in a persistent buffer
        so that a checkpoint resumes it; the default does nothing."""

    def sample_from(self, start: torch.Tensor, sampler: Sampler, generator: torch.Generator | None = None,
                    return_diagnostics: bool = False) -> torch.Tensor | SamplerOutput:
        """Prior samples from draws `start` of p0: the short-run chain on U = -log p(z)."""
        analytic = self.potential_and_grad if self.analytic_gradient else None
        return sampler(self.potential, start, generator, return_diagnostics=return_diagnostics,
                       potential_and_grad=analytic)

    def sample(self, batch_size: int, sampler: Sampler, generator: torch.Generator | None = None,
               device: torch.device | None = None, return_diagnostics: bool = False) -> torch.Tensor | SamplerOutput:
        """z ~ p(z): draws from p0 moved by `sample_from`."""
        return self.sample_from(self.sample_reference(batch_size, generator, device), sampler, generator,
                                return_diagnostics)

    @torch.no_grad()
    def log_partition(self, num_samples: int = 100_000, generator: torch.Generator | None = None) -> float:
        """log Z = log E_{p0}[exp(-E(z))], by Monte Carlo over p0."""
        latents = self.sample_reference(num_samples, generator)
        return float(torch.logsumexp(-self.energy(latents).double(), dim=0) - math.log(num_samples))


__all__ = ["Prior", "PriorConfig"]
