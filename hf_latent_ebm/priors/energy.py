"""The MLP energy of Pang et al. 2020, with one output or several."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..validation import require_at_least
from .base import Prior, PriorConfig

ACTIVATIONS = {"gelu": nn.GELU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "silu": nn.SiLU}
GRADIENTS = ("analytic", "autograd")


@strict
@dataclasses.dataclass
class EnergyPriorConfig(PriorConfig):
    """
    Settings of the MLP energy prior (the model config's `prior_config` for prior_type "ebm" and "coupling").

    Args:
        sigma (`float`, *optional*, defaults to 1.0): Std of the reference density p0 (see `PriorConfig`).
        hidden_dim (`int`, *optional*, defaults to 200): Width of the energy MLP (`ndf`).
        num_hidden_layers (`int`, *optional*, defaults to 2): Hidden layers of the energy MLP.
        activation (`str`, *optional*, defaults to `"gelu"`): One of "gelu", "leaky_relu", "silu".
        gradient (`str`, *optional*, defaults to `"analytic"`): How the prior chain gets grad E(z): "analytic" (the
            MLP's backward pass written out; the same values, faster for a small MLP) or "autograd".
    """

    hidden_dim: int = 200
    num_hidden_layers: int = 2
    activation: str = "gelu"
    gradient: str = "analytic"

    def validate_energy(self):
        require_at_least(self, ("hidden_dim", "num_hidden_layers"))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {self.gradient!r}")


def _activation_backward(activation: nn.Module, grad: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    """grad * activation'(pre), for the activations `ACTIVATIONS` builds, by the fused kernels autograd itself uses
    (one pass over the tensor; written out from erf and exp, the GELU derivative took seven)."""
    if isinstance(activation, nn.GELU):
        return torch.ops.aten.gelu_backward(grad, pre, approximate=activation.approximate)
    if isinstance(activation, nn.LeakyReLU):
        return torch.ops.aten.leaky_relu_backward(grad, pre, activation.negative_slope, False)
    if isinstance(activation, nn.SiLU):
        return torch.ops.aten.silu_backward(grad, pre)
    raise TypeError(f"no analytic derivative for {type(activation).__name__}")


class EnergyPrior(Prior):
    r"""
    p(z) = exp(-E(z)) p0(z) / Z with an MLP energy. With `num_outputs` K > 1 the MLP gives K component energies
    E_k(z) (e.g. one per class, whose negatives are class logits) and E(z) = -logsumexp_k(-E_k(z)), the energy of
    the mixture over components.

    Args:
        latent_dim (`int`): Dimension of z.
        hidden_dim (`int`): Width of each hidden layer.
        num_hidden_layers (`int`): Number of hidden layers.
        activation (`str`): "gelu", "leaky_relu" or "silu".
        reference_sigma (`float`): Std of the reference density p0.
        analytic_gradient (`bool`, *optional*, defaults to `True`):
            Give the prior chain grad U(z) by a hand-written backward pass through the MLP instead of autograd
            (same values; it skips autograd's graph bookkeeping, which dominates for a small MLP).
        num_outputs (`int`, *optional*, defaults to 1): Component energies K.
    """

    config_class = EnergyPriorConfig

    def __init__(self, latent_dim: int, hidden_dim: int, num_hidden_layers: int, activation: str,
                 reference_sigma: float, analytic_gradient: bool = True, num_outputs: int = 1):
        super().__init__(latent_dim, reference_sigma)
        self.analytic_gradient = analytic_gradient
        self.num_outputs = num_outputs
        layers, width = [], latent_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), ACTIVATIONS[activation]()]
            width = hidden_dim
        layers.append(nn.Linear(width, num_outputs))
        self.energy_net = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: EnergyPriorConfig, latent_dim: int, num_labels: int | None = None) -> "EnergyPrior":
        return cls(latent_dim=latent_dim, hidden_dim=config.hidden_dim, num_hidden_layers=config.num_hidden_layers,
                   activation=config.activation, reference_sigma=config.sigma,
                   analytic_gradient=config.gradient == "analytic")

    @classmethod
    def describe(cls, config: EnergyPriorConfig, sampler_config=None) -> str:
        return (super().describe(config, sampler_config).replace(
            " / Z,", f" / Z (MLP energy, {config.num_hidden_layers} hidden layers of {config.hidden_dim}),"))

    def component_energies(self, latents: torch.Tensor) -> torch.Tensor:
        """E_k(z), shape (batch, num_outputs)."""
        return self.energy_net(latents)

    def _reduce(self, component_energies: torch.Tensor) -> torch.Tensor:
        if self.num_outputs == 1:
            return component_energies.squeeze(-1)
        return -torch.logsumexp(-component_energies, dim=-1)

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        return self._reduce(self.energy_net(latents))

    def energy_magnitude(self, latents: torch.Tensor) -> torch.Tensor:
        # Every component: with class logits as components, their spread is what grows without a bound.
        return self.energy_net(latents).pow(2).mean(dim=-1)

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
        energy = self._reduce(hidden)
        linears = [module for module in self.energy_net if isinstance(module, nn.Linear)]
        if self.num_outputs == 1:
            grad = linears[-1].weight.expand(latents.shape[0], -1)
        else:  # d(-logsumexp(-E_k))/dE_k is the softmax of -E_k
            grad = torch.softmax(-hidden, dim=-1) @ linears[-1].weight
        for linear, (activation, pre) in zip(reversed(linears[:-1]), reversed(pre_activations)):
            grad = _activation_backward(activation, grad, pre) @ linear.weight
        sigma_sq = self.reference_sigma**2
        return energy + latents.pow(2).sum(dim=-1) / (2 * sigma_sq), grad + latents / sigma_sq


__all__ = ["EnergyPrior", "EnergyPriorConfig", "ACTIVATIONS", "GRADIENTS"]
