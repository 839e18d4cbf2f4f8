"""Tuning a Langevin chain's step size by the variational objective of short-run inference (Nijkamp et al. 2020,
"Learning multi-layer latent variable model via variational optimization of short run MCMC for approximate
inference", SRI): the K-step chain from z_0 is an approximate posterior q_s, and the best step s maximises
E_q[log p(x, z)] + H(q_s)."""

from collections.abc import Callable, Sequence

import torch

from .langevin import LangevinSampler, _check_energy_shape


def short_run_objective(sampler: LangevinSampler, potential: Callable, start: torch.Tensor, step_size: float,
                        noises: torch.Tensor, score_potential: Callable | None = None) -> torch.Tensor:
    r"""
    Per chain, -U(z_K) + log |det dz_K / dz_0| for `sampler`'s chain with the constant step `step_size` on the
    fixed `noises` (K, batch, dim), U scored by `score_potential` (defaults to the chain's `potential`).

    For fixed noise the chain is a flow of z_0, so log q(z_K | noise) = log q_0(z_0) - log |det J| (the SRI text
    code's estimate), and since conditioning lowers entropy, H(q_s) >= H(q_0) + E log |det J|: the mean of this
    value plus H(q_0) is a lower bound of E_q[log p(x, z)] + H(q_s), the ELBO of q_s, hence of log p(x). H(q_0) is
    the same for every step size, so the values rank step sizes. The chains must be independent (row i of z_K
    depends on row i of z_0 alone); the Jacobian costs `dim` backward passes through the unrolled chain.
    """
    z_start = start.detach().requires_grad_(True)
    z = z_start
    with torch.enable_grad():
        for noise in noises:
            energy = potential(z)
            _check_energy_shape(energy, z)
            (grad,) = torch.autograd.grad(energy.sum(), z, create_graph=True)
            z = z - 0.5 * step_size**2 * grad + sampler.noise_scale * step_size * noise
        # Row `index` of every chain's Jacobian, one coordinate of z_K at a time: (batch, dim, dim).
        jacobian = torch.stack([torch.autograd.grad(z[:, index].sum(), z_start, retain_graph=True)[0]
                                for index in range(z.shape[1])], dim=1)
        score = -(score_potential or potential)(z)
    return (score + torch.linalg.slogdet(jacobian).logabsdet).detach()


def tune_step_size(sampler: LangevinSampler, potential: Callable, start: torch.Tensor, factors: Sequence[float],
                   generator: torch.Generator | None = None, score_potential: Callable | None = None
                   ) -> tuple[float, dict[float, float]]:
    """The step size among `factors` times `sampler`'s constant one whose chain from `start` maximises the mean
    `short_run_objective`, every candidate on the same start and noise (common random numbers: the comparison is
    between step sizes, not noise draws); returns it and each candidate's objective. A diverging candidate scores
    -inf and is not chosen. A schedule of step sizes cannot be tuned this way (a ValueError says so)."""
    if not isinstance(sampler, LangevinSampler):
        raise ValueError(f"step-size tuning needs the Langevin sampler, got {type(sampler).__name__}")
    if len(set(sampler.step_sizes)) > 1:
        raise ValueError("tuning the posterior step size needs a constant posterior_step_size; "
                         "posterior_step_schedule is set")
    current = sampler.step_sizes[0] if sampler.step_sizes else float(sampler.step_size)
    noise_scale = sampler.noise_scale if sampler.add_noise else 0.0
    noises = torch.stack([sampler._noise(start, generator, noise_scale) for _ in range(sampler.num_steps)]) \
        if sampler.num_steps else start.new_zeros((0, *start.shape))
    objectives = {}
    for factor in factors:
        value = short_run_objective(sampler, potential, start, current * factor, noises, score_potential).mean()
        objectives[current * factor] = float(value) if torch.isfinite(value) else float("-inf")
    return max(objectives, key=objectives.get), objectives


__all__ = ["short_run_objective", "tune_step_size"]
