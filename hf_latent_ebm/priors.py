"""Priors over the latent z: an energy E(z) tilting a Gaussian reference density p0(z) = N(0, sigma^2 I)."""

import math

import torch
from torch import nn

_ACTIVATIONS = {"gelu": nn.GELU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "silu": nn.SiLU}


def _activation_derivative(activation: nn.Module, pre: torch.Tensor) -> torch.Tensor:
    """d activation / d input at `pre`, for the activations `_ACTIVATIONS` builds."""
    if isinstance(activation, nn.GELU):  # exact (erf) GELU: Phi(x) + x phi(x)
        return 0.5 * (1 + torch.erf(pre / math.sqrt(2))) + pre * torch.exp(-0.5 * pre * pre) / math.sqrt(2 * math.pi)
    if isinstance(activation, nn.LeakyReLU):
        return torch.where(pre > 0, 1.0, activation.negative_slope)
    if isinstance(activation, nn.SiLU):
        sigmoid = torch.sigmoid(pre)
        return sigmoid * (1 + pre * (1 - sigmoid))
    raise TypeError(f"no analytic derivative for {type(activation).__name__}")


class GaussianPrior(nn.Module):
    r"""
    The fixed prior p(z) = N(0, sigma^2 I) of the generator model learned by alternating back-propagation (Han et al.
    2017): the baseline an energy-based prior is compared against. It has no parameters and no energy; its samples
    are exact, so no prior chain runs.

    Args:
        latent_dim (`int`): Dimension of z.
        reference_sigma (`float`): Std of the prior.
    """

    exact_sampling = True

    def __init__(self, latent_dim: int, reference_sigma: float):
        super().__init__()
        self.latent_dim = latent_dim
        self.reference_sigma = reference_sigma
        # A buffer only to carry the module's device.
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.new_zeros(latents.shape[0])

    def reference_potential(self, latents: torch.Tensor) -> torch.Tensor:
        """-log p0(z) up to a constant: |z|^2 / (2 sigma^2)."""
        return latents.pow(2).sum(dim=-1) / (2 * self.reference_sigma**2)

    def potential(self, latents: torch.Tensor) -> torch.Tensor:
        return self.reference_potential(latents)

    def sample_reference(self, batch_size: int, generator: torch.Generator | None = None,
                         device: torch.device | None = None) -> torch.Tensor:
        device = device if device is not None else self._device_anchor.device
        return self.reference_sigma * torch.randn((batch_size, self.latent_dim), generator=generator, device=device)


class EnergyPrior(nn.Module):
    r"""
    p(z) = exp(-E(z)) p0(z) / Z with an MLP energy E (sign convention: low energy = likely, Langevin descends E).

    Args:
        latent_dim (`int`): Dimension of z.
        hidden_dim (`int`): Width of each hidden layer.
        num_hidden_layers (`int`): Number of hidden layers.
        activation (`str`): "gelu", "leaky_relu" or "silu".
        reference_sigma (`float`): Std of the reference density p0.
        analytic_gradient (`bool`, *optional*, defaults to `True`):
            Give the prior chain grad U(z) by a hand-written backward pass through the MLP instead of autograd
            (same values; it skips autograd's graph bookkeeping, which dominates for a small MLP).
    """

    exact_sampling = False  # samples come from short-run Langevin

    def __init__(self, latent_dim: int, hidden_dim: int, num_hidden_layers: int, activation: str,
                 reference_sigma: float, analytic_gradient: bool = True):
        super().__init__()
        self.latent_dim = latent_dim
        self.reference_sigma = reference_sigma
        self.analytic_gradient = analytic_gradient
        layers, width = [], latent_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), _ACTIVATIONS[activation]()]
            width = hidden_dim
        layers.append(nn.Linear(width, 1))
        self.energy_net = nn.Sequential(*layers)

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        """E(z), one value per row."""
        return self.energy_net(latents).squeeze(-1)

    def reference_potential(self, latents: torch.Tensor) -> torch.Tensor:
        """-log p0(z) up to a constant: |z|^2 / (2 sigma^2)."""
        return latents.pow(2).sum(dim=-1) / (2 * self.reference_sigma**2)

    def potential(self, latents: torch.Tensor) -> torch.Tensor:
        """-log p(z) up to log Z: E(z) + |z|^2 / (2 sigma^2); the prior Langevin chain descends it."""
        return self.energy(latents) + self.reference_potential(latents)

    @torch.no_grad()
    def potential_and_grad(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U(z), grad U(z)) with the MLP's backward pass written out: Linear layers and their activations."""
        pre_activations, hidden = [], latents
        for module in self.energy_net:
            if isinstance(module, nn.Linear):
                hidden = nn.functional.linear(hidden, module.weight, module.bias)
            else:
                pre_activations.append((module, hidden))
                hidden = module(hidden)
        energy = hidden.squeeze(-1)
        linears = [module for module in self.energy_net if isinstance(module, nn.Linear)]
        grad = linears[-1].weight.expand(latents.shape[0], -1)
        for linear, (activation, pre) in zip(reversed(linears[:-1]), reversed(pre_activations)):
            grad = (grad * _activation_derivative(activation, pre)) @ linear.weight
        sigma_sq = self.reference_sigma**2
        return energy + latents.pow(2).sum(dim=-1) / (2 * sigma_sq), grad + latents / sigma_sq

    def sample_reference(self, batch_size: int, generator: torch.Generator | None = None,
                         device: torch.device | None = None) -> torch.Tensor:
        """Draws from p0, the chains' starting distribution."""
        device = device if device is not None else self.energy_net[0].weight.device
        noise = torch.randn((batch_size, self.latent_dim), generator=generator, device=device)
        return self.reference_sigma * noise


__all__ = ["EnergyPrior", "GaussianPrior"]
