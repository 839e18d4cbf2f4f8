"""The sampler interface: a weightless chain that moves latents on a potential U(z), for the prior and the posterior."""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import PartConfig

# The chains a model builds a sampler for: the prior's, the posterior's (the configured training and inference
# chain), and the posterior's proper (the chain that targets the model's own p(z | x), whatever the training chain).
SAMPLER_CHAINS = ("prior", "posterior", "proper_posterior")


@dataclass
class SamplerOutput:
    """
    Args:
        latents (`torch.Tensor` of shape `(batch_size, latent_dim)`):
            The chains' final states.
        energies (`torch.Tensor` of shape `(num_steps,)`, or `(1,)` with `return_diagnostics="last"`):
            Mean potential U(z) over the batch before each step (before the last step).
        grad_norms (`torch.Tensor` of shape `(num_steps,)`, or `(1,)` with `return_diagnostics="last"`):
            Mean per-example norm of grad U(z) before each step (before the last step).
    """

    latents: torch.Tensor
    energies: torch.Tensor
    grad_norms: torch.Tensor


class Sampler:
    r"""
    A chain on a potential U(z), chosen by the config's `sampler_type` (`hf_latent_ebm.samplers.SAMPLERS`). It holds
    no weights: the model builds one per chain (`SAMPLER_CHAINS`) with `from_config` and hands them to the learner;
    the prior runs its chain through `prior.sample_from(start, sampler)`.

    Subclasses declare their settings as `config_class` (a `PartConfig`: the model config's `sampler_config` is
    validated against it) and implement `from_config`, `__call__` and, for the public calls that take another chain
    length or step size (`model.sample_latents(num_steps=...)`, cross-modal generation), `with_chain`. The model
    rebuilds its samplers when `sampler_type` or `sampler_config` changes.
    """

    config_class: type[PartConfig] = PartConfig

    @classmethod
    def check_config(cls, sampler_config: PartConfig, decoder_class: type) -> None:
        """Raise a ValueError when the sampler's settings do not fit the model's decoder (`decoder_class`, e.g. its
        `compilable`); run by the model config's validation."""

    @classmethod
    def from_config(cls, sampler_config: PartConfig, chain: str, compilable: bool = True) -> "Sampler":
        """The sampler of `chain` (one of `SAMPLER_CHAINS`) as the typed `sampler_config` sets it; `compilable` says
        whether every part the chain runs through may be compiled."""
        raise NotImplementedError

    def with_chain(self, num_steps: int | None = None, step_size=None) -> "Sampler":
        """This sampler with another chain length or step size (None keeps the current one)."""
        raise NotImplementedError(f"{type(self).__name__} takes no num_steps / step_size overrides")

    def __call__(
        self,
        potential: Callable[[torch.Tensor], torch.Tensor],
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        return_diagnostics: bool | str = False,
        potential_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor | SamplerOutput:
        """Move the chains from `latents` (shape (batch, dim)) on `potential` (z -> one value per chain);
        `potential_and_grad`, when given, returns (U(z), grad U(z)) without autograd. With `return_diagnostics`
        (True / "all" for every step, "last" for the last) a `SamplerOutput` comes back, else the final latents."""
        raise NotImplementedError


__all__ = ["Sampler", "SamplerOutput", "SAMPLER_CHAINS"]
