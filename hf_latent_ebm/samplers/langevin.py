"""Short-run Langevin dynamics, the built-in sampler (`sampler_type="langevin"`) of the prior and posterior chains."""

import dataclasses
import functools
import warnings
from collections.abc import Callable, Sequence

import torch
from huggingface_hub.dataclasses import strict

from ..registry import PartConfig
from .base import Sampler, SamplerOutput

# What a chain that reaches a non-finite state does: raise, or reset those chains to their start.
NONFINITE_POLICIES = ("raise", "reset")
# How the chain's steps run: "eager" (plain PyTorch), "compile" (through one torch.compile'd function, a few steps
# per call, replayed as a CUDA graph on CUDA), or "auto" ("compile" on CUDA, "eager" elsewhere).
FAST_PATHS = ("auto", "eager", "compile")
# Steps per compiled call. A chain with an analytic gradient (the prior's MLP) is a few tiny kernels per step, so the
# per-call overhead (guards, the CUDA graph launch) would dominate it one step at a time; a decoder's step is real
# work, and unrolling it would multiply the compile time for little gain.
ANALYTIC_STEPS_PER_CALL = 10
AUTOGRAD_STEPS_PER_CALL = 1
# What `return_diagnostics` may ask for: every step's U and |grad U| (True or "all"), or the last step's alone
# ("last": what a training step logs, at the cost of one norm and two means per chain).
DIAGNOSTICS = (False, True, "all", "last")


@strict
@dataclasses.dataclass
class LangevinConfig(PartConfig):
    """
    Settings of the short-run Langevin chains (the model config's `sampler_config` for sampler_type "langevin").

    Args:
        prior_steps (`int`, *optional*, defaults to 60): Short-run prior chain length K0 (>= 0).
        prior_step_size (`float`, *optional*, defaults to 0.4): Prior Langevin step size s0 (> 0).
        prior_step_schedule (`list[float]`, *optional*):
            Prior step sizes replacing `prior_step_size`, read like `posterior_step_schedule`; e.g. large steps to
            travel from p0, then small ones, which a narrow low-energy region needs (a step s is unstable across a
            direction of standard deviation below s / 2).
        posterior_steps (`int`, *optional*, defaults to 20): Short-run posterior chain length K1 (>= 0).
        posterior_step_size (`float`, *optional*, defaults to 0.1): Posterior Langevin step size s1 (> 0).
        posterior_step_schedule (`list[float]`, *optional*):
            Decaying posterior step sizes replacing `posterior_step_size`: the first steps' sizes, the last repeated
            for any further steps (cut when longer than `posterior_steps`); e.g. the SRI text code's
            [.8, .7, .6, .5, .2, .2, .1, .1, .05].
        posterior_noise_scale (`float`, *optional*, defaults to 1.0):
            Temperature T of the posterior chain's noise, T * s * N(0, I): 1 is Langevin proper, smaller values
            approach gradient descent on -log p(x, z) (the SRI text code uses 0.05 to 0.2).
        noise (`bool`, *optional*, defaults to `True`):
            Add the Langevin noise term (False gives gradient descent on the potential).
        on_nonfinite (`str`, *optional*, defaults to `"raise"`):
            What a chain that reaches a non-finite z or energy does: "raise" a `LangevinDivergenceError`, or
            "reset" the diverged chains to their initial state (with a warning).
        fast_path (`str`, *optional*, defaults to `"auto"`):
            How the chains' steps run: "eager" (plain PyTorch), "compile" (through one `torch.compile`d function,
            grad U and the update fused, a few steps per call, replayed as a CUDA graph on CUDA; the decoder must
            declare `compilable`) or "auto" ("compile" on CUDA where the parts allow it, "eager" elsewhere). Same
            noise, same chain (docs/performance.md).
    """

    prior_steps: int = 60
    prior_step_size: float = 0.4
    prior_step_schedule: list[float] | None = None
    posterior_steps: int = 20
    posterior_step_size: float = 0.1
    posterior_step_schedule: list[float] | None = None
    posterior_noise_scale: float = 1.0
    noise: bool = True
    on_nonfinite: str = "raise"
    fast_path: str = "auto"

    def validate_chains(self):
        for name in ("prior_step_size", "posterior_step_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("prior_steps", "posterior_steps"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("prior_step_schedule", "posterior_step_schedule"):
            schedule = getattr(self, name)
            if schedule is not None and (not schedule or not all(size > 0 for size in schedule)):
                raise ValueError(f"{name} must be a non-empty list of step sizes > 0, got {schedule}")
        if not self.posterior_noise_scale >= 0:
            raise ValueError(f"posterior_noise_scale must be >= 0, got {self.posterior_noise_scale}")
        if self.on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {self.on_nonfinite!r}")
        if self.fast_path not in FAST_PATHS:
            raise ValueError(f"fast_path must be one of {FAST_PATHS}, got {self.fast_path!r}")


class LangevinDivergenceError(RuntimeError):
    """A Langevin chain reached a non-finite state (usually a step size too large for the energy)."""


# The chains' output (shared by every sampler), under the name it had when Langevin was the one sampler.
LangevinOutput = SamplerOutput


def langevin_steps(potential_and_grad, latents: torch.Tensor, noises: torch.Tensor, drifts: torch.Tensor,
                   noise_coefficients: torch.Tensor):
    """len(noises) Langevin updates, z <- z - drift_k * grad U(z) + noise_coefficient_k * noise_k: the unit the fast
    path compiles, so the gradients and the update arithmetic of several steps fuse into one graph (the loop unrolls).
    Returns z after the last step and, per step, U(z) and |grad U(z)| before it, shape (steps, batch)."""
    energies, grad_norms = [], []
    for noise, drift, noise_coefficient in zip(noises.unbind(), drifts.unbind(), noise_coefficients.unbind()):
        energy, grad = potential_and_grad(latents)
        latents = latents - drift * grad + noise_coefficient * noise
        energies.append(energy)
        grad_norms.append(grad.norm(dim=1))
    return latents, torch.stack(energies), torch.stack(grad_norms)


def functional_potential_and_grad(potential: Callable[[torch.Tensor], torch.Tensor]):
    """(U(z), grad U(z)) by `torch.func.grad`: unlike `torch.autograd.grad` it traces into one compiled graph, and it
    differentiates with respect to z alone whatever the caller's grad mode, so parameter gradients stay untouched."""

    def total_and_values(latents):
        values = potential(latents)
        return values.sum(), values

    # grad of the sum is the per-chain gradient because the chains are independent.
    gradient = torch.func.grad(total_and_values, has_aux=True)

    def potential_and_grad(latents):
        grad, values = gradient(latents)
        return values, grad

    return potential_and_grad


@functools.cache
def compiled_langevin_steps(device_type: str):
    """`langevin_steps` compiled once per device type. On CUDA, "reduce-overhead" replays each call as a CUDA graph
    (the chain is many small kernels, so launch overhead is most of its eager time). Dynamo caches on the step's
    code and treats the potential's closure (observations, module parameters) as inputs, so new batches and
    trained weights reuse the compiled graph; a new shape or chunk length recompiles, and past torch's recompile
    limit it runs eagerly."""
    mode = "reduce-overhead" if device_type == "cuda" else None
    # Every chain of every model shares this one function (a prior chain, posterior chains with either prior term,
    # train and eval modes, a few batch shapes and chunk lengths), so torch's default of 8 graphs per function is too
    # few for one process.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    return torch.compile(langevin_steps, mode=mode)


def resolve_fast_path(fast_path: str, device: torch.device) -> str:
    """ "eager" or "compile" for a chain on `device`."""
    if fast_path == "auto":
        return "compile" if device.type == "cuda" else "eager"
    return fast_path


def finite_mean(values: torch.Tensor) -> torch.Tensor:
    """Per step, the mean over the chains whose value is finite (NaN where none is): with on_nonfinite="reset" the
    diverged chains are reset and training goes on, so their NaN or inf must not turn the diagnostics NaN (which
    the trainer would read as a diverged loss)."""
    return torch.where(torch.isfinite(values), values, torch.nan).nanmean(dim=1)


def _check_energy_shape(energy: torch.Tensor, latents: torch.Tensor) -> None:
    if energy.shape != latents.shape[:1]:
        raise ValueError(f"potential must return one value per chain {tuple(latents.shape[:1])}, "
                         f"got {tuple(energy.shape)}")


class LangevinSampler(Sampler):
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
        fast_path (`str`, *optional*, defaults to `"eager"`):
            One of `FAST_PATHS`. "compile" runs the steps through one compiled function, `langevin_steps` (a CUDA
            graph on CUDA), on the same noise as the eager loop, so both give the same chain up to floating-point
            reassociation; "auto" compiles on CUDA only (on the CPU compiling costs seconds per shape and gains
            little).
    """

    def __init__(self, num_steps: int, step_size: float | Sequence[float], add_noise: bool = True,
                 on_nonfinite: str = "raise", noise_scale: float = 1.0, fast_path: str = "eager"):
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
        if fast_path not in FAST_PATHS:
            raise ValueError(f"fast_path must be one of {FAST_PATHS}, got {fast_path!r}")
        self.fast_path = fast_path
        self.num_steps = num_steps
        self.step_size = step_size
        self.step_sizes = [float(size) for size in step_sizes]
        self.add_noise = add_noise
        self.on_nonfinite = on_nonfinite
        self.noise_scale = noise_scale

    config_class = LangevinConfig

    @classmethod
    def check_config(cls, sampler_config: LangevinConfig, decoder_class: type) -> None:
        if sampler_config.fast_path == "compile" and not decoder_class.compilable:
            raise ValueError(f"sampler_config: fast_path='compile' needs a decoder that declares compilable=True; "
                             f"{decoder_class.__name__} does not (use 'auto' or 'eager')")

    @classmethod
    def from_config(cls, sampler_config: LangevinConfig, chain: str, compilable: bool = True) -> "LangevinSampler":
        """The chain as `sampler_config` sets it (its step-size schedule, if any). The posterior chain has the
        configured noise temperature, the "proper_posterior" one full noise; `fast_path="auto"` keeps to eager where
        a part of the chain is not `compilable` (the config refuses an explicit "compile" for such a decoder)."""
        prefix = "prior" if chain == "prior" else "posterior"
        step_size = (getattr(sampler_config, f"{prefix}_step_schedule")
                     or getattr(sampler_config, f"{prefix}_step_size"))
        noise_scale = sampler_config.posterior_noise_scale if chain == "posterior" else 1.0
        fast_path = sampler_config.fast_path
        if fast_path == "auto" and not compilable:
            fast_path = "eager"
        return cls(num_steps=getattr(sampler_config, f"{prefix}_steps"), step_size=step_size,
                   add_noise=sampler_config.noise, on_nonfinite=sampler_config.on_nonfinite,
                   noise_scale=noise_scale, fast_path=fast_path)

    def with_chain(self, num_steps: int | None = None, step_size: float | Sequence[float] | None = None
                   ) -> "LangevinSampler":
        """This chain with another number of steps or step size (which replaces a schedule); None keeps the
        current one."""
        return LangevinSampler(self.num_steps if num_steps is None else num_steps,
                               self.step_size if step_size is None else step_size, self.add_noise, self.on_nonfinite,
                               self.noise_scale, self.fast_path)

    def __repr__(self) -> str:
        return (
            f"LangevinSampler(num_steps={self.num_steps}, step_size={self.step_size}, "
            f"add_noise={self.add_noise}, on_nonfinite={self.on_nonfinite!r}, noise_scale={self.noise_scale}, "
            f"fast_path={self.fast_path!r})"
        )

    def __call__(
        self,
        potential: Callable[[torch.Tensor], torch.Tensor],
        latents: torch.Tensor,
        generator: torch.Generator | None = None,
        return_diagnostics: bool | str = False,
        potential_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor | LangevinOutput:
        """Run the chains from `latents`. `potential_and_grad`, when given, returns (U(z), grad U(z)) directly and
        replaces autograd on `potential` (which must then give the same values). With `return_diagnostics` (one of
        `DIAGNOSTICS`) a `LangevinOutput` comes back, with every step's mean U and |grad U| (True, "all") or the
        last step's ("last"), as device tensors: nothing is read on the host, and no random number is drawn."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("Langevin sampling needs autograd for grad U(z); call it under torch.no_grad(), "
                               "not torch.inference_mode()")
        if latents.dim() != 2:
            raise ValueError(f"latents must have shape (batch, dim), got {tuple(latents.shape)}")
        if not (isinstance(return_diagnostics, bool) or return_diagnostics in ("all", "last")):
            raise ValueError(f"return_diagnostics must be one of {DIAGNOSTICS}, got {return_diagnostics!r}")
        last_only = return_diagnostics == "last"
        start = latents.detach()
        # Accumulated on the device and read once at the end: a per-step check would synchronise every step.
        finite_energy = torch.ones(start.shape[0], dtype=torch.bool, device=start.device)
        energies, grad_norms = [], []
        noise_scale = self.noise_scale if self.add_noise else 0.0
        if resolve_fast_path(self.fast_path, start.device) == "compile":
            # torch.func differentiates with respect to z whatever the grad mode; no_grad keeps the compiled graph
            # an inference graph (no backward through the parameters is traced).
            advance, grad_mode = self._compiled_steps(potential, potential_and_grad, start, generator, noise_scale), \
                torch.no_grad()
            steps_per_call = ANALYTIC_STEPS_PER_CALL if potential_and_grad is not None else AUTOGRAD_STEPS_PER_CALL
        else:
            advance, grad_mode = self._eager_step(potential, potential_and_grad, generator, noise_scale,
                                                  bool(return_diagnostics), last_only), torch.enable_grad()
            steps_per_call = 1
        z = start.clone()
        with grad_mode:
            for first in range(0, self.num_steps, steps_per_call):
                last = min(first + steps_per_call, self.num_steps)
                z, step_energies, step_grad_norms = advance(z, first, last)
                finite_energy &= torch.isfinite(step_energies).all(dim=0)
                if last_only and last == self.num_steps:
                    # Reduced now: on CUDA graphs a later replay overwrites this call's outputs.
                    energies.append(finite_mean(step_energies[-1:].detach()))
                    grad_norms.append(finite_mean(step_grad_norms[-1:]))
                elif return_diagnostics and not last_only:
                    energies.append(finite_mean(step_energies.detach()))
                    grad_norms.append(finite_mean(step_grad_norms))
        z = self._handle_nonfinite(z, start, finite_energy)
        if not return_diagnostics:
            return z
        empty = z.new_zeros(0)
        return LangevinOutput(
            latents=z,
            energies=torch.cat(energies) if energies else empty,
            grad_norms=torch.cat(grad_norms) if grad_norms else empty,
        )

    def _noise(self, like: torch.Tensor, generator: torch.Generator | None, noise_scale: float) -> torch.Tensor:
        # Both paths draw the same noise in the same order, so they run the same chain.
        if noise_scale == 0:
            return torch.zeros_like(like)
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def _eager_step(self, potential, potential_and_grad, generator, noise_scale, with_grad_norms, last_only=False):
        """Step `first` in plain PyTorch (`last` is always first + 1): z after it, and U and (for the diagnostics:
        every step's, or with `last_only` the last step's alone) |grad U| before it."""

        def advance(z: torch.Tensor, first: int, last: int):
            step_size = self.step_sizes[first]
            if potential_and_grad is not None:
                energy, grad = potential_and_grad(z)
            else:
                z = z.detach().requires_grad_(True)
                energy = potential(z)
                _check_energy_shape(energy, z)
                (grad,) = torch.autograd.grad(energy.sum(), z)
            z = z.detach() - 0.5 * step_size**2 * grad
            if noise_scale > 0:
                z = z + noise_scale * step_size * self._noise(z, generator, noise_scale)
            wanted = with_grad_norms and (not last_only or last == self.num_steps)
            return z, energy[None], grad.norm(dim=1)[None] if wanted else None

        return advance

    def _compiled_steps(self, potential, potential_and_grad, start, generator, noise_scale):
        """Steps first..last-1 as one compiled `langevin_steps` call, on the same noise as `_eager_step`."""
        compiled = compiled_langevin_steps(start.device.type)
        cuda_graphs = start.device.type == "cuda"
        if potential_and_grad is None:
            potential_and_grad = functional_potential_and_grad(potential)
        # The step sizes enter as tensors: compiled code specialises on Python floats, and a schedule of them would
        # recompile per value. One host-to-device copy per chain.
        sizes = torch.tensor(self.step_sizes, dtype=start.dtype, device=start.device)
        drifts, noise_coefficients = 0.5 * sizes**2, noise_scale * sizes

        def advance(z: torch.Tensor, first: int, last: int):
            # Drawn one step at a time, in order, exactly as the eager loop draws them.
            noises = torch.stack([self._noise(z, generator, noise_scale) for _ in range(first, last)])
            if cuda_graphs:  # the next replay overwrites this one's outputs, so z is copied out below
                torch.compiler.cudagraph_mark_step_begin()
            z_next, energies, grad_norms = compiled(potential_and_grad, z, noises, drifts[first:last],
                                                    noise_coefficients[first:last])
            if first == 0:
                _check_energy_shape(energies[0], z)
            # U and |grad U| are read (by kernels queued before the next replay) and dropped within this call.
            return (z_next.clone() if cuda_graphs else z_next), energies, grad_norms

        return advance

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


__all__ = ["LangevinConfig", "LangevinSampler", "LangevinOutput", "LangevinDivergenceError", "NONFINITE_POLICIES", "FAST_PATHS",
           "DIAGNOSTICS", "langevin_steps", "functional_potential_and_grad", "compiled_langevin_steps",
           "resolve_fast_path"]
