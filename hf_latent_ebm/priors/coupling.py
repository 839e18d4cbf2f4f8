"""The symbol-vector coupling prior of Pang, Nijkamp, Cui, Han & Wu 2020 (and Pang & Wu, ICML 2021)."""

import torch

from ..samplers.base import Sampler
from .energy import EnergyPrior, EnergyPriorConfig


class CouplingPrior(EnergyPrior):
    r"""
    A joint prior over a label y in {0..K-1} and the latent z: the energy MLP gives K logits f(z), and

    p(y, z) = exp(f_y(z)) p0(z) / Z,  p(z) = exp(logsumexp f(z)) p0(z) / Z,  p(y | z) = softmax f(z).

    It is the multi-output `EnergyPrior` whose component energies are -f_k(z) (so its energy is the marginal's,
    -logsumexp f), with the classifier `logits` and class-conditional sampling (`sample_from(..., labels=y)` runs
    the chain on -log p(z | y) = -f_y(z) - log p0(z)).

    Args: as [`EnergyPrior`], with `num_outputs` the number of classes K >= 2.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.num_outputs < 2:
            raise ValueError(f"a coupling prior needs at least 2 classes, got {self.num_outputs}")

    @classmethod
    def from_config(cls, config: EnergyPriorConfig, latent_dim: int, num_labels: int | None = None
                    ) -> "CouplingPrior":
        return cls(latent_dim=latent_dim, hidden_dim=config.hidden_dim, num_hidden_layers=config.num_hidden_layers,
                   activation=config.activation, reference_sigma=config.sigma,
                   analytic_gradient=config.gradient == "analytic", num_outputs=num_labels)

    def logits(self, latents: torch.Tensor) -> torch.Tensor:
        """f(z), shape (batch, K): log p(y | z) up to the softmax's normaliser."""
        return -self.energy_net(latents)

    def class_potential(self, labels: torch.Tensor):
        """U(z) = -f_y(z) + |z|^2 / (2 sigma^2), the potential of p(z | y) for one label per chain."""
        labels = labels.long()
        return lambda latents: (-self.logits(latents).gather(1, labels[:, None]).squeeze(1)
                                + self.reference_potential(latents))

    def sample_from(self, start: torch.Tensor, sampler: Sampler, generator: torch.Generator | None = None,
                    return_diagnostics: bool = False, labels: torch.Tensor | None = None):
        """Marginal samples of p(z), or with `labels` (one per chain) of p(z | y)."""
        if labels is None:
            return super().sample_from(start, sampler, generator, return_diagnostics)
        return sampler(self.class_potential(labels.to(start.device)), start, generator,
                       return_diagnostics=return_diagnostics)


__all__ = ["CouplingPrior"]
