"""The sparse spike-and-slab prior of Li & Han 2022 ("Learning Sparse Latent Representations for Generator Model")."""

import dataclasses
import math

import torch
from huggingface_hub.dataclasses import strict

from .base import PriorConfig
from .gaussian import GaussianPrior


@strict
@dataclasses.dataclass
class SpikeSlabPriorConfig(PriorConfig):
    """
    Settings of the spike-and-slab prior (the model config's `prior_config` for prior_type "spike_slab").

    Args:
        sigma (`float`, *optional*, defaults to 1.0): Std of the slab, the wide Gaussian component.
        spike_std (`float`, *optional*, defaults to 0.1): Std of the spike, the narrow component at 0; below `sigma`.
        slab_weight_floor (`float`, *optional*, defaults to 0.001): The slab weight a never falls below it.
        sparsify_after_updates (`int`, *optional*, defaults to 12000): Updates with a = 1 (a plain Gaussian) before
            sparsification starts: the paper's 20 MNIST epochs at batch 100. The decoder first learns to use z.
        sparsify_rate (`float`, *optional*, defaults to 0.033): How much a falls per update after the warm-up.
    """

    spike_std: float = 0.1
    slab_weight_floor: float = 0.001
    sparsify_after_updates: int = 12000
    sparsify_rate: float = 0.033

    def validate_spike_slab(self):
        if not 0 < self.spike_std < self.sigma:
            raise ValueError(f"spike_std must be in (0, sigma={self.sigma}), got {self.spike_std}")
        if not 0 < self.slab_weight_floor <= 1:
            raise ValueError(f"slab_weight_floor must be in (0, 1], got {self.slab_weight_floor}")
        if not self.sparsify_rate >= 0:
            raise ValueError(f"sparsify_rate must be >= 0, got {self.sparsify_rate}")
        if self.sparsify_after_updates < 0:
            raise ValueError(f"sparsify_after_updates must be >= 0, got {self.sparsify_after_updates}")


def spike_slab_log_density(latents, slab_weight, slab_std: float, spike_std: float) -> torch.Tensor:
    """log p(z_i) per coordinate, normalised, for p = a N(0, slab_std^2) + (1 - a) N(0, spike_std^2). By logsumexp:
    the spike's density underflows a few spike stds out, and a = 1 makes its log weight -inf, which logsumexp drops."""
    weight = torch.as_tensor(slab_weight, dtype=latents.dtype, device=latents.device)
    slab = torch.log(weight) - math.log(slab_std) - 0.5 * (latents / slab_std) ** 2
    spike = torch.log1p(-weight) - math.log(spike_std) - 0.5 * (latents / spike_std) ** 2
    return torch.logsumexp(torch.stack([slab, spike]), dim=0) - 0.5 * math.log(2 * math.pi)


def spike_slab_score(latents, slab_weight, slab_std: float, spike_std: float) -> torch.Tensor:
    """d log p(z_i) / dz_i in closed form, the paper's -z + r1 r2 z / (exp(-r2 z^2 / 2) + r1) for slab_std s = 1;
    for any s, -z / s^2 + r1 r2 z / (exp(-r2 z^2 / 2) + r1) with r1 = (1 - a) s / (a t), r2 = 1/s^2 - 1/t^2.
    The fraction is r2 z times the spike's responsibility r1 / (exp(-r2 z^2 / 2) + r1), written as
    sigmoid(log r1 + r2 z^2 / 2): the same value, but where the paper's exp overflows to inf for large |z| (r2 < 0;
    beyond |z| ~ 1.4 in float32 with t = 0.1), the sigmoid goes smoothly to 0, the slab's limit -z / s^2, and no
    inf enters the chain's arithmetic; a = 1 (r1 = 0, a plain Gaussian) gives log r1 = -inf, responsibility 0."""
    weight = torch.as_tensor(slab_weight, dtype=latents.dtype, device=latents.device)
    log_r1 = torch.log1p(-weight) - torch.log(weight) + math.log(slab_std / spike_std)
    r2 = 1 / slab_std**2 - 1 / spike_std**2
    return -latents / slab_std**2 + r2 * latents * torch.sigmoid(log_r1 + 0.5 * r2 * latents**2)


class _SpikeSlabPotential(torch.autograd.Function):
    """-sum_i log p(z_i), whose backward is the closed-form score: chains that differentiate the potential (the
    posterior chain, by autograd or torch.func) get the paper's gradient, not one through the logsumexp. Written with
    `setup_context` so that torch.func (the compiled chains) can differentiate it."""

    @staticmethod
    def forward(latents, slab_weight, slab_std, spike_std):
        return -spike_slab_log_density(latents, slab_weight, slab_std, spike_std).sum(dim=-1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        latents, slab_weight, ctx.slab_std, ctx.spike_std = inputs
        ctx.save_for_backward(latents, slab_weight)

    @staticmethod
    def backward(ctx, grad_output):
        latents, slab_weight = ctx.saved_tensors
        score = spike_slab_score(latents, slab_weight, ctx.slab_std, ctx.spike_std)
        return -grad_output.unsqueeze(-1) * score, None, None, None


class SpikeSlabPrior(GaussianPrior):
    r"""
    p(z) = prod_i [a N(z_i; 0, sigma^2) + (1 - a) N(z_i; 0, spike_std^2)] (Li & Han 2022): each coordinate is drawn
    from the wide slab with probability a or else from the narrow spike at 0, so most coordinates of z are near 0
    once a is small, a sparse code. Nothing is learned: it has no energy (p = p0, the mixture, so no prior chain
    runs and its draws are exact samples), and a follows a fixed schedule, 1 for `sparsify_after_updates` training
    updates, then falling by `sparsify_rate` per update to `slab_weight_floor` (gradual sparsification, as the
    paper's code: the decoder learns to use z under a Gaussian before the prior pulls it to 0). The schedule counts
    updates in the persistent buffer `num_updates`, so saved models and trainer checkpoints resume it. Posterior
    chains start at z = 0, as in the paper. p0 is not a Gaussian, so the variational learners refuse it. What a
    prior without an energy does (zero energy, p0's draws as samples, log Z = 0) is `GaussianPrior`'s.

    Args:
        latent_dim (`int`): Dimension of z.
        reference_sigma (`float`): Std of the slab.
        spike_std, slab_weight_floor, sparsify_after_updates, sparsify_rate: See `SpikeSlabPriorConfig`.
    """

    config_class = SpikeSlabPriorConfig
    gaussian_reference = False
    analytic_gradient = True

    def __init__(self, latent_dim: int, reference_sigma: float = 1.0, spike_std: float = 0.1,
                 slab_weight_floor: float = 0.001, sparsify_after_updates: int = 12000, sparsify_rate: float = 0.033):
        super().__init__(latent_dim, reference_sigma)
        self.spike_std, self.slab_weight_floor = spike_std, slab_weight_floor
        self.sparsify_after_updates, self.sparsify_rate = sparsify_after_updates, sparsify_rate
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    @classmethod
    def from_config(cls, config: SpikeSlabPriorConfig, latent_dim: int, num_labels: int | None = None):
        return cls(latent_dim, config.sigma, config.spike_std, config.slab_weight_floor,
                   config.sparsify_after_updates, config.sparsify_rate)

    @classmethod
    def describe(cls, config: SpikeSlabPriorConfig, sampler_config=None) -> str:
        return (f"the spike-and-slab prior a N(0, {config.sigma}^2) + (1 - a) N(0, {config.spike_std}^2) per "
                f"coordinate (Li & Han 2022), its slab weight a falling from 1 after {config.sparsify_after_updates} "
                f"updates to {config.slab_weight_floor}")

    @property
    def slab_weight(self) -> torch.Tensor:
        """The current a, a 0-d float32 tensor on the prior's device: a tensor, so that the chains read it without a
        host synchronisation and a compiled chain does not recompile as it changes."""
        past_warmup = (self.num_updates - self.sparsify_after_updates).clamp_min(0).float()
        return (1 - self.sparsify_rate * past_warmup).clamp(self.slab_weight_floor, 1.0)

    def on_training_step(self) -> None:
        self.num_updates.add_(1)  # in place: a compiled chain holds the buffer's address

    def reference_potential(self, latents: torch.Tensor) -> torch.Tensor:
        """-sum_i log p(z_i), normalised (the constants are cheap, and keep it equal to -reference_log_density)."""
        return _SpikeSlabPotential.apply(latents, self.slab_weight.to(latents.dtype), self.reference_sigma,
                                         self.spike_std)

    def reference_log_density(self, latents: torch.Tensor) -> torch.Tensor:
        return spike_slab_log_density(latents, self.slab_weight, self.reference_sigma, self.spike_std).sum(dim=-1)

    @torch.no_grad()
    def potential_and_grad(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.slab_weight
        return (-spike_slab_log_density(latents, weight, self.reference_sigma, self.spike_std).sum(dim=-1),
                -spike_slab_score(latents, weight, self.reference_sigma, self.spike_std))

    def sample_reference(self, batch_size: int, generator: torch.Generator | None = None,
                         device: torch.device | None = None) -> torch.Tensor:
        """Exact draws: each coordinate from the slab with probability a, else from the spike."""
        device = device if device is not None else self._device_anchor.device
        shape = (batch_size, self.latent_dim)
        from_slab = torch.rand(shape, generator=generator, device=device) < self.slab_weight.to(device)
        stds = torch.where(from_slab, self.reference_sigma, self.spike_std)
        return stds * torch.randn(shape, generator=generator, device=device)

    def posterior_start(self, batch_size: int, generator: torch.Generator | None = None,
                        device: torch.device | None = None) -> torch.Tensor:
        """z = 0, where the paper starts inference (the mode of a sparse prior); no randomness is drawn."""
        device = device if device is not None else self._device_anchor.device
        return torch.zeros((batch_size, self.latent_dim), device=device)


__all__ = ["SpikeSlabPrior", "SpikeSlabPriorConfig", "spike_slab_log_density", "spike_slab_score"]
