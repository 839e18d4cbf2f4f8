"""The latent EBM prior learned as a short diffusion-like sequence of conditional EBMs (Cui & Han, ICML 2024, after
the diffusion recovery likelihood of Gao et al. 2021): the marginal EBM over a (multi-layer) latent is highly
multi-modal and hard to sample by one short-run chain, while each conditional p(z_t | z_{t+1}) of a noised
sequence is close to unimodal. Trained by the "diffusion" learner (`learners/diffusion.py`)."""

import dataclasses
import math

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..layers import mlp
from ..validation import require_at_least
from .base import Prior, PriorConfig

# The paper's noise schedule: betas linear from 1e-4 to 0.02 over 1000 steps, subsampled, plus a last step of beta 1.
SCHEDULE_STEPS, BETA_START, BETA_END = 1000, 1e-4, 0.02


def noise_levels(num_stages: int) -> torch.Tensor:
    """alpha_bar_t for t = 0 .. T (T = `num_stages`): 1 at t = 0 (the clean latents), the 1000-step linear schedule
    read at T - 1 equal intervals, and 0 at t = T (pure noise, the paper's final beta = 1 stage)."""
    # On the CPU whatever the default device (models are built on "meta" when loaded).
    betas = torch.linspace(BETA_START, BETA_END, SCHEDULE_STEPS, dtype=torch.float64, device="cpu")
    cumulative = torch.cat([torch.ones(1, dtype=torch.float64, device="cpu"), torch.cumprod(1 - betas, 0)])
    read_at = [round(stage * SCHEDULE_STEPS / num_stages) for stage in range(num_stages)]
    return torch.cat([cumulative[read_at], torch.zeros(1, dtype=torch.float64, device="cpu")]).float()


@strict
@dataclasses.dataclass
class DiffusionPriorConfig(PriorConfig):
    """
    Settings of the diffusion-assisted prior (`prior_type="diffusion"`, with `learner="diffusion"`).

    Args:
        sigma (`float`, defaults to 1.0): Std of the reference N(0, sigma^2 I) every stage's energy tilts.
        num_stages (`int`, defaults to 4): T conditional EBMs, the last on pure noise (the paper's max_T = 3 plus its
            final beta = 1 stage); a prior draw runs one short chain per stage.
        hidden_dim, num_hidden_layers (`int`, defaults to 200 and 2): The energy MLP E(z, t).
        time_embedding_dim (`int`, defaults to 16): The learned embedding of the stage t the MLP reads beside z.
    """

    num_stages: int = 4
    hidden_dim: int = 200
    num_hidden_layers: int = 2
    time_embedding_dim: int = 16

    def validate_stages(self):
        require_at_least(self, ("num_stages",), 2)
        require_at_least(self, ("hidden_dim", "time_embedding_dim"))
        require_at_least(self, ("num_hidden_layers",), 0)


class DiffusionPrior(Prior):
    r"""
    A sequence of conditional EBMs over noised latents z_0 (the latents) .. z_T (pure noise), with
    z_{t+1} = a_{t+1} z_t + s_{t+1} noise (a^2 + s^2 = 1, `noise_levels`):

        p(z_t | z_{t+1}) ∝ exp(-E(z_t, t)) N(z_t; 0, sigma^2 I) N(z_{t+1}; a_{t+1} z_t, s_{t+1}^2 I),

    one MLP E(z, t) reading a learned embedding of t. A prior draw starts at z_T ~ N(0, sigma^2 I) and runs the
    prior chain once per stage, from the top down, each from the stage above's state; the chain's step is scaled by
    s_{t+1}, the conditional's width. The model's p(z) (the posterior chains' prior term, anomaly scores) is stage
    0's energy, E(z, 0), which recovery likelihood learns as the marginal's (Gao et al. 2021).
    """

    config_class = DiffusionPriorConfig
    required_learner = "diffusion"

    def __init__(self, latent_dim: int, reference_sigma: float, num_stages: int = 4, hidden_dim: int = 200,
                 num_hidden_layers: int = 2, time_embedding_dim: int = 16):
        super().__init__(latent_dim, reference_sigma)
        self.num_stages = num_stages
        self.stage_embedding = nn.Embedding(num_stages, time_embedding_dim)
        self.net = mlp(latent_dim + time_embedding_dim, hidden_dim, num_hidden_layers, 1)
        # Plain numbers, not buffers: they follow from num_stages (a loaded model is built on "meta", where a
        # non-persistent buffer would stay empty); `_schedule` puts them on the latents' device.
        levels = noise_levels(num_stages)
        scales = torch.cat([torch.ones(1, device="cpu"), (levels[1:] / levels[:-1]).sqrt()])  # a_t; a_0 unused
        self.alpha_bars, self.scales = levels.tolist(), scales.tolist()
        self.noise_stds = (1 - scales.pow(2)).clamp_min(0).sqrt().tolist()

    @classmethod
    def from_config(cls, config: DiffusionPriorConfig, latent_dim: int, num_labels: int | None = None):
        return cls(latent_dim, config.sigma, config.num_stages, config.hidden_dim, config.num_hidden_layers,
                   config.time_embedding_dim)

    @classmethod
    def describe(cls, config: DiffusionPriorConfig, sampler_config=None) -> str:
        steps = getattr(sampler_config, "prior_steps", None)
        chain = f"{steps} Langevin steps per stage" if steps is not None else "its prior chain per stage"
        return (f"an energy-based prior learned as {config.num_stages} conditional EBMs of a diffusion-like noising "
                f"of the latents (Cui & Han 2024), sampled from noise stage by stage with {chain}")

    def stage_energy(self, latents: torch.Tensor, stages: torch.Tensor) -> torch.Tensor:
        """E(z, t) per row, `stages` (batch,) the t of each row."""
        return self.net(torch.cat([latents, self.stage_embedding(stages)], dim=1)).squeeze(-1)

    def energy(self, latents: torch.Tensor) -> torch.Tensor:
        return self.stage_energy(latents, torch.zeros(len(latents), dtype=torch.long, device=latents.device))

    def noised_pair(self, latents: torch.Tensor, stages: torch.Tensor, generator: torch.Generator | None = None):
        """(z_t, z_{t+1}) of the forward noising from clean `latents`, per row's stage t."""
        noise = torch.randn((2, *latents.shape), generator=generator, device=latents.device)
        alpha_bars, scales, noise_stds = (torch.tensor(values, device=latents.device)
                                          for values in (self.alpha_bars, self.scales, self.noise_stds))
        alpha_bar = alpha_bars[stages][:, None]
        noised = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise[0]
        above = scales[stages + 1][:, None] * noised + noise_stds[stages + 1][:, None] * noise[1]
        return noised, above

    def stage_potential(self, stage: int, above: torch.Tensor):
        """U(z_t) of the conditional p(z_t | z_{t+1} = `above`), for the chain of one stage."""
        scale, std = self.scales[stage + 1], self.noise_stds[stage + 1]
        stages = torch.full((len(above),), stage, dtype=torch.long, device=above.device)
        return lambda latents: (self.stage_energy(latents, stages) + self.reference_potential(latents)
                                + (above - scale * latents).pow(2).sum(dim=1) / (2 * std**2))

    def stage_chain(self, stage: int, above: torch.Tensor, sampler, generator: torch.Generator | None = None,
                    return_diagnostics=False):
        """z_t ~ p(z_t | z_{t+1} = `above`): the chain from above / a (the conditional's centre when the energy is
        flat), its step scaled by the conditional's width."""
        scale = self.scales[stage + 1]
        start = above / scale if scale > 0 else above
        width = min(1.0, self._width(stage))
        chain = sampler.with_chain(step_size=[size * width for size in sampler.step_sizes]) if sampler.num_steps \
            else sampler
        return chain(self.stage_potential(stage, above), start, generator, return_diagnostics=return_diagnostics)

    def _width(self, stage: int) -> float:
        # The std of z_t given z_{t+1} when the energy is flat: 1 / sqrt(1/sigma^2 + a^2/s^2).
        scale, std = self.scales[stage + 1], self.noise_stds[stage + 1]
        return 1 / math.sqrt(1 / self.reference_sigma**2 + scale**2 / std**2)

    def sample_from(self, start: torch.Tensor, sampler, generator: torch.Generator | None = None,
                    return_diagnostics=False):
        """From z_T = `start` (draws of p0) down to z_0, one conditional chain per stage; with `return_diagnostics`
        the last stage's chain output."""
        latents = start
        for stage in reversed(range(self.num_stages)):
            output = self.stage_chain(stage, latents, sampler, generator, return_diagnostics and stage == 0)
            latents = output.latents if return_diagnostics and stage == 0 else output
        return output


__all__ = ["DiffusionPrior", "DiffusionPriorConfig", "noise_levels"]
