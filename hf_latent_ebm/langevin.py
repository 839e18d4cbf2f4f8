"""Short-run Langevin dynamics, the one sampler used for both the prior and the posterior chains."""

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

# What a chain that reaches a non-finite state does: raise, or reset those chains to their start.
NONFINITE_POLICIES = ("raise", "reset")


class LangevinDivergenceError(RuntimeError):
    """A Langevin chain reached a non-finite state (usually a step size too large for the energy)."""


@dataclass
class LangevinOutput:
    """
    Args:
        latents (`torch.Tensor` of shape `(batch_size, latent_dim)`):
            The chains' final states.
        energies (`torch.Tensor` of shape `(num_steps,)`):
            Mean potential U(z) over the batch before each step.
        grad_norms (`torch.Tensor` of shape `(num_steps,)`):
            Mean per-example norm of grad U(z) before each step.
    """

    latents: torch.Tensor
    energies: torch.Tensor
    grad_norms: torch.Tensor


class LangevinSampler:
    r"""
    Short-run Langevin on a potential U: z <- z - (s_k^2 / 2) grad U(z) + T * s_k * noise, K steps from the given
    start. T = 1 is Langevin proper; T < 1 is the tempered chain of the SRI text code, which also decays s_k per step.

    It holds no weights: the potential is a callable mapping z of shape (batch, dim) to one value per chain, so
    the same sampler runs the prior chain (U = -log p(z)) and the posterior chain (U = -log p(x, z)). Gradients
    are taken with respect to z only, so calling it inside a training step leaves parameter gradients untouched,
    and it works inside `torch.no_grad()` callers (not `torch.inference_mode()`, where autograd is off).

    Args:
        num_steps (`int`): Number of steps K (0 returns the start unchanged).
        step_size (`float` or sequence of `float`):
            Step size s > 0 for every step, or a schedule: the sizes of the first steps, the last one repeated for
            any further steps (a schedule longer than `num_steps` is cut).
        add_noise (`bool`, *optional*, defaults to `True`): Add the T * s_k * N(0, I) term.
        on_nonfinite (`str`, *optional*, defaults to `"raise"`):
            "raise" a `LangevinDivergenceError` when a chain ends non-finite, or "reset" those chains to their
            start with a warning.
        noise_scale (`float`, *optional*, defaults to 1.0): The noise temperature T >= 0.
    """

    def __init__(self, num_steps: int, step_size: float | Sequence[float], add_noise: bool = True,
                 on_nonfinite: str = "raise", noise_scale: float = 1.0):
        if num_steps < 0:
            raise ValueError(f"num_steps must be >= 0, got {num_steps}")
        schedule = [step_size] if isinstance(step_size, (int, float)) else list(step_size)
        if not schedule or not all(size > 0 for size in schedule):
            raise ValueError(f"step sizes must be > 0 (and a schedule non-empty), got {step_size}")
        # A schedule gives the first steps' sizes; its last size repeats for the remaining steps.
        step_sizes = [schedule[min(step, len(schedule) - 1)] for step in range(num_steps)]
        if not noise_scale >= 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
        self.num_steps = num_steps
        self.step_size = step_size
        self.step_sizes = [float(size) for size in step_sizes]
        self.add_noise = add_noise
        self.on_nonfinite = on_nonfinite
        self.noise_scale = noise_scale

    def __repr__(self) -> str:
        return (
            f"LangevinSampler(num_steps={self.num_steps}, step_size={self.step_size}, "
            f"add_noise={self.add_noise}, on_nonfinite={self.on_nonfinite!r}, noise_scale={self.noise_scale})"
        )

    def __call__(
        self,
        potential: Callable[[torch.Tensor], torch.Tensor],
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        return_diagnostics: bool = False,
        potential_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor | LangevinOutput:
        """Run the chains from `latents`. `potential_and_grad`, when given, returns (U(z), grad U(z)) directly and
        replaces autograd on `potential` (which must then give the same values)."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("Langevin sampling needs autograd for grad U(z); call it under torch.no_grad(), "
                               "not torch.inference_mode()")
        if latents.dim() != 2:
            raise ValueError(f"latents must have shape (batch, dim), got {tuple(latents.shape)}")
        start = latents.detach()
        z = start.clone()
        # Accumulated on the device and read once at the end: a per-step check would synchronise every step.
        finite_energy = torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
        energies, grad_norms = [], []
        with torch.enable_grad():
            for step_size in self.step_sizes:
                if potential_and_grad is not None:
                    energy, grad = potential_and_grad(z)
                else:
                    z.requires_grad_(True)
                    energy = potential(z)
                    if energy.shape != z.shape[:1]:
                        raise ValueError(f"potential must return one value per chain {tuple(z.shape[:1])}, "
                                         f"got {tuple(energy.shape)}")
                    # grad of the sum is the per-chain gradient because the chains are independent.
                    (grad,) = torch.autograd.grad(energy.sum(), z)
                finite_energy &= torch.isfinite(energy)
                z = z.detach() - 0.5 * step_size**2 * grad
                if self.add_noise and self.noise_scale > 0:
                    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
                    z = z + self.noise_scale * step_size * noise
                if return_diagnostics:
                    energies.append(energy.detach().mean())
                    grad_norms.append(grad.norm(dim=1).mean())
        z = self._handle_nonfinite(z, start, finite_energy)
        if not return_diagnostics:
            return z
        empty = z.new_zeros(0)
        return LangevinOutput(
            latents=z,
            energies=torch.stack(energies) if energies else empty,
            grad_norms=torch.stack(grad_norms) if grad_norms else empty,
        )

    def _handle_nonfinite(self, z: torch.Tensor, start: torch.Tensor, finite_energy: torch.Tensor) -> torch.Tensor:
        # A NaN or inf state never returns to finite values, so checking the final state (plus every step's
        # energy) catches every diverged chain.
        finite_rows = torch.isfinite(z).all(dim=1) & finite_energy
        if bool(finite_rows.all()):
            return z
        num_bad = int((~finite_rows).sum())
        message = (f"{num_bad} of {z.shape[0]} Langevin chains reached a non-finite state or energy within "
                   f"{self.num_steps} steps "
                   f"of size {self.step_size}; lower the step size or check the energy for overflow")
        if self.on_nonfinite == "raise":
            raise LangevinDivergenceError(message)
        warnings.warn(message + "; those chains were reset to their start", RuntimeWarning, stacklevel=3)
        return torch.where(finite_rows[:, None], z, start)


__all__ = ["LangevinSampler", "LangevinOutput", "LangevinDivergenceError", "NONFINITE_POLICIES"]
