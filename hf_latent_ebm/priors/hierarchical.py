"""The multi-layer (hierarchical) latent-EBM prior of Cui, Wu & Han (CVPR 2023, ICCV 2023): a top-down chain of
conditional Gaussians over layers z_1 .. z_L, tilted by an energy."""

import dataclasses
import math

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..layers import mlp
from ..validation import check_layer_sizes, require_at_least
from .base import Prior, PriorConfig

ENERGY_KINDS = ("layerwise", "joint")


@strict
@dataclasses.dataclass
class HierarchicalPriorConfig(PriorConfig):
    """
    Settings of the hierarchical prior (the model config's `prior_config` for prior_type "hierarchical").

    Args:
        sigma (`float`, defaults to 1.0): Std of the top layer's N(0, sigma^2 I) and of the chains' start.
        layer_sizes (`list[int]`, defaults to `[8, 8]`): Dimensions of z_1 (the bottom layer, next to x) .. z_L (the
            top); they must sum to the model's `latent_dim`, z being their concatenation in that order.
        energy (`str`, defaults to `"layerwise"`): "layerwise", one energy MLP per layer, sum_i E_i(z_i) (CVPR 2023:
            each layer's own context), or "joint", one MLP on the concatenation (ICCV 2023: context across layers).
        hidden_dim, num_hidden_layers (`int`, defaults to 200 and 2): The energy MLPs.
        conditional_hidden_dim, conditional_num_hidden_layers (`int`, defaults to 200 and 2): The MLPs that give
            the mean and log-std of p(z_i | z_{i+1}).
        min_std (`float`, defaults to 0.01): Floor of the conditional stds (the papers' code adds 0.01), which keeps
            the conditionals' log-densities finite.
        links (`bool`, defaults to `True`): The top-down Gaussian links p(z_i | z_{i+1}) (CVPR 2023). False gives
            ICCV 2023's prior, exp(-E_f(z)) N(0, sigma^2 I) over every layer: the layers' order then lives in the
            ladder generator and encoder, and the Gaussian base confines every layer whatever the energy learns.
    """

    layer_sizes: list[int] = dataclasses.field(default_factory=lambda: [8, 8])
    energy: str = "layerwise"
    hidden_dim: int = 200
    num_hidden_layers: int = 2
    conditional_hidden_dim: int = 200
    conditional_num_hidden_layers: int = 2
    min_std: float = 0.01
    links: bool = True

    def validate_layers(self):
        check_layer_sizes(self.layer_sizes)
        if self.energy not in ENERGY_KINDS:
            raise ValueError(f"energy must be one of {ENERGY_KINDS}, got {self.energy!r}")
        require_at_least(self, ("hidden_dim", "conditional_hidden_dim"))
        require_at_least(self, ("num_hidden_layers", "conditional_num_hidden_layers"), 0)
        if not self.min_std > 0:
            raise ValueError(f"min_std must be > 0, got {self.min_std}")


class HierarchicalPrior(Prior):
    r"""
    p(z) ∝ exp(-E_f(z)) prod_{i<L} p(z_i | z_{i+1}) N(z_L; 0, sigma^2 I) over z = [z_1, .., z_L] (z_1 next to x):
    Gaussian links p(z_i | z_{i+1}) = N(mu_i(z_{i+1}), diag s_i(z_{i+1})^2) with learned MLPs, tilted as a whole by
    the energy E_f (`energy`: a sum of per-layer MLPs, or one MLP on the concatenation). Written in the library's
    form p(z) = exp(-E(z)) p0(z) / Z with p0 = N(0, sigma^2 I) on every coordinate, so that

        E(z) = E_f(z) - sum_{i<L} [log p(z_i | z_{i+1}) - log N(z_i; 0, sigma^2 I)]

    and the existing chains run over all layers at once. The links are inside E, so the maximum-likelihood learner's
    contrastive energy loss E(z+) - E(z-) trains them as the CVPR code does (log p(z_i- | z_{i+1}-) - log p(z_i+ |
    z_{i+1}+)): the joint prior is normalised as a whole, not layer by layer.

    Args:
        latent_dim (`int`): Dimension of z, the sum of `layer_sizes`.
        reference_sigma (`float`): sigma.
        layer_sizes, energy, hidden_dim, num_hidden_layers, conditional_hidden_dim, conditional_num_hidden_layers,
        min_std: See `HierarchicalPriorConfig`.
    """

    config_class = HierarchicalPriorConfig
    compilable = True  # the compiled chains equal the eager ones (tests/test_fast_path.py)

    def __init__(self, latent_dim: int, reference_sigma: float, layer_sizes: list[int], energy: str = "layerwise",
                 hidden_dim: int = 200, num_hidden_layers: int = 2, conditional_hidden_dim: int = 200,
                 conditional_num_hidden_layers: int = 2, min_std: float = 0.01, links: bool = True):
        super().__init__(latent_dim, reference_sigma)
        check_layer_sizes(layer_sizes, latent_dim, "prior_config.layer_sizes")
        self.layer_sizes, self.energy_kind, self.min_std = list(layer_sizes), energy, min_std
        sizes = self.layer_sizes
        if energy == "layerwise":
            self.energies = nn.ModuleList(mlp(size, hidden_dim, num_hidden_layers, 1) for size in sizes)
        else:
            self.energies = nn.ModuleList([mlp(latent_dim, hidden_dim, num_hidden_layers, 1)])
        # links[i] maps z_{i+1} to the mean and log-std of z_i, for i = 0 .. L-2 (layer L is the top).
        self.links = nn.ModuleList(mlp(sizes[i + 1], conditional_hidden_dim, conditional_num_hidden_layers,
                                       2 * sizes[i]) for i in range(len(sizes) - 1) if links)

    @classmethod
    def from_config(cls, config: HierarchicalPriorConfig, latent_dim: int, num_labels: int | None = None):
        return cls(latent_dim, config.sigma, config.layer_sizes, config.energy, config.hidden_dim,
                   config.num_hidden_layers, config.conditional_hidden_dim, config.conditional_num_hidden_layers,
                   config.min_std, config.links)

    @classmethod
    def describe(cls, config: HierarchicalPriorConfig, sampler_config=None) -> str:
        steps = getattr(sampler_config, "prior_steps", None)
        chain = f"{steps}-step short-run Langevin over all layers" if steps is not None else "its prior chain"
        energy = "layer-wise energies" if config.energy == "layerwise" else "one energy on all layers"
        base = "top-down Gaussian links" if config.links else "N(0, I) on every layer"
        return (f"a {len(config.layer_sizes)}-layer joint energy-based prior (layers of {config.layer_sizes} "
                f"dimensions, bottom to top; {base} tilted by {energy}; Cui, Wu & Han 2023), sampled by {chain}")

    @property
    def num_layers(self) -> int:
        return len(self.layer_sizes)

    def split(self, latents: torch.Tensor) -> list[torch.Tensor]:
        """z as its layers [z_1, .., z_L], each (batch, size)."""
        if latents.dim() != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"latents must have shape (batch, {self.latent_dim}) (layers {self.layer_sizes}), "
                             f"got {tuple(latents.shape)}")
        return list(latents.split(self.layer_sizes, dim=1))

    def link(self, layer: int, above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of p(z_layer | z_{layer+1}) for 0-based `layer` < L - 1 (a prior with links)."""
        if not self.links:
            raise ValueError("this hierarchical prior has no links (prior_config links=False): every layer is "
                             "N(0, sigma^2 I) under the energy")
        mean, log_std = self.links[layer](above).chunk(2, dim=-1)
        return mean, log_std.clamp(max=10).exp() + self.min_std

    def link_log_densities(self, latents: torch.Tensor) -> torch.Tensor:
        """sum_{i<L} log p(z_i | z_{i+1}), one value per row (a prior with links)."""
        layers = self.split(latents)
        total = latents.new_zeros(latents.shape[0])
        for i in range(self.num_layers - 1):
            mean, std = self.link(i, layers[i + 1])
            total = total + (-0.5 * ((layers[i] - mean) / std).pow(2) - std.log()).sum(dim=-1)
        return total - 0.5 * math.log(2 * math.pi) * sum(self.layer_sizes[:-1])

    def resample_layer(self, latents: torch.Tensor, layer: int, sampler, generator: torch.Generator | None = None):
        """z with layer `layer` (1 = z_1, next to x, .. L = the top) redrawn from p(z_layer | the other layers) by
        the chain `sampler`, started from p0, the other layers held fixed: what that layer controls."""
        if not isinstance(layer, int) or not 1 <= layer <= self.num_layers:
            raise ValueError(f"layer must be an int in 1..{self.num_layers} (1 is next to x, {self.num_layers} the "
                             f"top), got {layer!r}")
        layers = self.split(latents)
        fixed = [part.detach() for part in layers]

        def conditional_potential(values: torch.Tensor) -> torch.Tensor:
            return self.potential(torch.cat(fixed[:layer - 1] + [values] + fixed[layer:], dim=1))

        start = self.reference_sigma * torch.randn(layers[layer - 1].shape, generator=generator,
                                                   device=latents.device)
        fixed[layer - 1] = sampler(conditional_potential, start, generator)
        return torch.cat(fixed, dim=1)

    def layer_sweep(self, latents: torch.Tensor, sampler, generator: torch.Generator | None = None) -> torch.Tensor:
        """(L + 1, batch, latent_dim): `latents`, then for each layer from the top down the latents with that layer
        redrawn (`resample_layer`); decoded row by row, a grid of what each layer controls."""
        rows = [latents] + [self.resample_layer(latents, layer, sampler, generator)
                            for layer in range(self.num_layers, 0, -1)]
        return torch.stack(rows)

    def tilt_energy(self, latents: torch.Tensor) -> torch.Tensor:
        """E_f(z): the sum of the per-layer energies, or the joint one."""
        if self.energy_kind == "joint":
            return self.energies[0](latents).squeeze(-1)
        return sum(energy(layer).squeeze(-1) for energy, layer in zip(self.energies, self.split(latents)))

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        if not self.links:  # ICCV 2023: p0 is the whole base density
            return self.tilt_energy(latents)
        # The lower layers' p0 terms are divided out: p0 covers every coordinate, the links replace it below the top.
        lower = latents[:, :self.latent_dim - self.layer_sizes[-1]]  # never empty: there are >= 2 layers
        return self.tilt_energy(latents) - self.link_log_densities(latents) + self.reference_log_density(lower)


__all__ = ["HierarchicalPrior", "HierarchicalPriorConfig", "ENERGY_KINDS"]
