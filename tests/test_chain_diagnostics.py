"""The chain diagnostics of Nijkamp et al. 2020 (energy difference, Langevin |grad U|): reported by the energy-based
learners, absent for the Gaussian prior, cheap (no random numbers, no change to the chains), logged and plotted."""

import json
import math

import pytest
import torch

from hf_latent_ebm import LangevinSampler, LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.learners.base import CHAIN_DIAGNOSTICS
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .test_modeling_latent_ebm import TINY

DIAGNOSED = {"energy_difference", "posterior_chain_grad_norm", "prior_chain_grad_norm"}


def quadratic(latents):
    return (latents - 1).pow(2).sum(dim=1)


def images(count=8, seed=0):
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def model_with(**overrides):
    torch.manual_seed(0)
    return LatentEBMForImageGeneration(LatentEBMConfig(**{**TINY, **overrides}))


def test_the_last_step_diagnostics_leave_the_chain_and_the_generator_as_they_were():
    sampler, start = LangevinSampler(num_steps=5, step_size=0.3), torch.randn(6, 2)
    plain_generator, diagnosed_generator = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    plain = sampler(quadratic, start, plain_generator)
    last = sampler(quadratic, start, diagnosed_generator, return_diagnostics="last")
    every = sampler(quadratic, start, torch.Generator().manual_seed(4), return_diagnostics=True)
    assert torch.equal(last.latents, plain) and torch.equal(every.latents, plain)
    assert torch.equal(plain_generator.get_state(), diagnosed_generator.get_state()), "no extra random numbers"
    assert last.grad_norms.shape == (1,) and last.energies.shape == (1,)
    assert torch.equal(last.grad_norms, every.grad_norms[-1:]) and torch.equal(last.energies, every.energies[-1:])
    assert len(LangevinSampler(num_steps=0, step_size=0.3)(quadratic, start, return_diagnostics="last").grad_norms) == 0
    with pytest.raises(ValueError, match="return_diagnostics"):
        sampler(quadratic, start, return_diagnostics="every")


def test_the_mle_learner_reports_them_with_an_energy_and_they_match_a_manual_computation():
    model = model_with()
    pixel_values = images()
    output = model.learner.losses(model.learner_context, pixel_values, {}, torch.Generator().manual_seed(7))
    assert DIAGNOSED <= set(output.terms)
    assert all(math.isfinite(output.terms[name].item()) and not output.terms[name].requires_grad
               for name in DIAGNOSED)
    # The energy difference is the energy loss's value, computed on the update's own samples.
    prior = model.prior
    with torch.no_grad():
        manual = prior.energy(output.posterior_latents).mean() - prior.energy(output.prior_latents).mean()
    torch.testing.assert_close(output.terms["energy_difference"], manual)
    torch.testing.assert_close(output.terms["energy_difference"], output.terms["energy_loss"].detach())
    # |grad U| at the last step: rerun both chains from the same draws with every step's diagnostics.
    generator = torch.Generator().manual_seed(7)
    posterior_start, prior_start = prior.sample_reference(8, generator), prior.sample_reference(8, generator)
    posterior = model.posterior_sampler()(model.posterior_chain_potential(pixel_values), posterior_start, generator,
                                          return_diagnostics=True)
    prior_chain = prior.sample_from(prior_start, model.prior_sampler(), generator, return_diagnostics=True)
    assert torch.equal(posterior.latents, output.posterior_latents)
    torch.testing.assert_close(output.terms["posterior_chain_grad_norm"], posterior.grad_norms[-1])
    torch.testing.assert_close(output.terms["prior_chain_grad_norm"], prior_chain.grad_norms[-1])


def test_the_gaussian_prior_reports_none():
    model = model_with(prior_type="gaussian")
    output = model(pixel_values=images(), generator=torch.Generator().manual_seed(0))
    assert not set(output.loss_terms) & set(CHAIN_DIAGNOSTICS)


def test_the_variational_ebm_reports_the_energy_difference_and_the_prior_chain():
    output = model_with(learner="vae_ebm")(pixel_values=images(), generator=torch.Generator().manual_seed(0))
    assert {"energy_difference", "prior_chain_grad_norm"} <= set(output.loss_terms)
    assert "posterior_chain_grad_norm" not in output.loss_terms  # q infers z; no posterior chain runs
    torch.testing.assert_close(output.loss_terms["energy_difference"], output.loss_terms["energy_loss"])


def test_the_trainer_logs_and_plots_them(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, batch_size=8, seed=0, sample_every=0,
                             checkpoint_every=0, log_every=1, num_grid_samples=4)
    LatentEBMTrainer(model_with(), images(16), args).train()
    history = json.loads((tmp_path / "loss_history.json").read_text())
    assert len(history) == 3 and all(DIAGNOSED <= set(record) for record in history)
    assert all(math.isfinite(record[name]) for record in history for name in DIAGNOSED)
    assert (tmp_path / "chain_diagnostics.png").exists() and (tmp_path / "loss_curve.png").exists()
