import pytest
import torch

from hf_latent_ebm import LangevinDivergenceError, LangevinOutput, LangevinSampler

MEAN = torch.tensor([1.5, -0.5])
VARIANCE = torch.tensor([0.5, 2.0])


def quadratic(latents):
    """U(z) = sum (z - mean)^2 / (2 var): the potential of N(mean, diag(var))."""
    return ((latents - MEAN) ** 2 / (2 * VARIANCE)).sum(dim=1)


def test_sampler_reproduces_the_gaussian_of_a_quadratic_energy():
    step_size, num_chains = 0.1, 4000
    sampler = LangevinSampler(num_steps=800, step_size=step_size)
    latents = sampler(quadratic, torch.zeros(num_chains, 2), torch.Generator().manual_seed(0))
    # The unadjusted chain's stationary variance for this Gaussian is var / (1 - s^2 / (4 var)).
    expected_variance = VARIANCE / (1 - step_size**2 / (4 * VARIANCE))
    # Tolerances are about 5 standard errors of the estimates over 4000 independent chains.
    mean_tolerance = 5 * (expected_variance / num_chains).sqrt()
    variance_tolerance = 5 * expected_variance * (2 / num_chains) ** 0.5
    assert ((latents.mean(0) - MEAN).abs() < mean_tolerance).all(), latents.mean(0)
    assert ((latents.var(0) - expected_variance).abs() < variance_tolerance).all(), latents.var(0)


def test_without_noise_the_chain_descends_to_the_mode():
    sampler = LangevinSampler(num_steps=1000, step_size=0.3, add_noise=False)
    output = sampler(quadratic, torch.randn(10, 2), return_diagnostics=True)
    assert isinstance(output, LangevinOutput)
    assert torch.allclose(output.latents, MEAN.expand(10, 2), atol=1e-3)
    assert output.energies.shape == (1000,) and output.grad_norms.shape == (1000,)
    assert (output.energies[1:] <= output.energies[:-1] + 1e-6).all()


def test_same_generator_same_chain_and_zero_steps_is_identity():
    start = torch.randn(6, 2)
    sampler = LangevinSampler(num_steps=5, step_size=0.2)
    first = sampler(quadratic, start, torch.Generator().manual_seed(1))
    second = sampler(quadratic, start, torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    assert not torch.equal(first, sampler(quadratic, start, torch.Generator().manual_seed(2)))
    assert torch.equal(LangevinSampler(0, 0.2)(quadratic, start), start)


def test_runs_under_no_grad_and_leaves_parameter_gradients_alone():
    layer = torch.nn.Linear(2, 1)
    sampler = LangevinSampler(num_steps=3, step_size=0.1)
    with torch.no_grad():
        latents = sampler(lambda z: layer(z).squeeze(-1) + quadratic(z), torch.randn(4, 2))
    assert not latents.requires_grad
    assert layer.weight.grad is None


def test_inference_mode_is_refused_with_a_clear_message():
    with torch.inference_mode(), pytest.raises(RuntimeError, match="no_grad"):
        LangevinSampler(2, 0.1)(quadratic, torch.randn(3, 2))


def test_divergence_raises_or_resets_the_bad_chains():
    exploding = lambda z: (z**4).sum(dim=1) * 1e6  # noqa: E731  (a step of 1.0 overflows at once)
    start = torch.randn(5, 2)
    with pytest.raises(LangevinDivergenceError, match="5 of 5"):
        LangevinSampler(10, 1.0)(exploding, start)
    with pytest.warns(RuntimeWarning):
        latents = LangevinSampler(10, 1.0, on_nonfinite="reset")(exploding, start)
    assert torch.equal(latents, start)


def test_per_step_sizes_and_noise_scale_follow_the_update_rule():
    start, schedule, temperature = torch.randn(6, 2), [0.8, 0.3, 0.05], 0.2
    latents = LangevinSampler(3, schedule, noise_scale=temperature)(quadratic, start, torch.Generator().manual_seed(4))
    # The same update written out: z <- z - s_k^2 / 2 * grad U(z) + T * s_k * noise, noise drawn in the same order.
    generator, expected = torch.Generator().manual_seed(4), start.clone()
    for step_size in schedule:
        grad = (expected - MEAN) / VARIANCE
        expected = expected - 0.5 * step_size**2 * grad + temperature * step_size * torch.randn(6, 2, generator=generator)
    assert torch.allclose(latents, expected, atol=1e-6)
    # A zero temperature is the noiseless chain; a constant schedule is the scalar step size.
    assert torch.equal(LangevinSampler(3, schedule, noise_scale=0.0)(quadratic, start),
                       LangevinSampler(3, schedule, add_noise=False)(quadratic, start))
    assert torch.equal(LangevinSampler(3, [0.2])(quadratic, start, torch.Generator().manual_seed(5)),
                       LangevinSampler(3, 0.2)(quadratic, start, torch.Generator().manual_seed(5)))
    # A schedule's last size repeats for further steps; a longer one is cut.
    assert LangevinSampler(4, schedule).step_sizes == [0.8, 0.3, 0.05, 0.05]
    assert LangevinSampler(2, schedule).step_sizes == [0.8, 0.3]


@pytest.mark.parametrize("kwargs", [dict(num_steps=-1, step_size=0.1), dict(num_steps=2, step_size=0.0),
                                    dict(num_steps=2, step_size=0.1, on_nonfinite="nope"),
                                    dict(num_steps=3, step_size=[]), dict(num_steps=2, step_size=[0.1, 0.0]),
                                    dict(num_steps=2, step_size=0.1, noise_scale=-0.5)])
def test_bad_sampler_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        LangevinSampler(**kwargs)


def test_potential_with_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="one value per chain"):
        LangevinSampler(2, 0.1)(lambda z: z.sum(), torch.randn(3, 2))


@pytest.mark.parametrize("activation", ["gelu", "leaky_relu", "silu"])
def test_analytic_prior_gradient_matches_autograd_and_gives_the_same_chain(activation):
    from hf_latent_ebm.priors import EnergyPrior

    torch.manual_seed(0)
    prior = EnergyPrior(latent_dim=6, hidden_dim=32, num_hidden_layers=2, activation=activation,
                        reference_sigma=0.8)
    latents = torch.randn(50, 6) * 2
    energy, grad = prior.potential_and_grad(latents)
    reference = latents.clone().requires_grad_(True)
    reference_energy = prior.potential(reference)
    (reference_grad,) = torch.autograd.grad(reference_energy.sum(), reference)
    assert torch.allclose(energy, reference_energy.detach(), atol=1e-5)
    assert torch.allclose(grad, reference_grad, atol=1e-5)
    # The same noise gives the same 60-step chain whichever way the gradient is computed (stated tolerance 1e-4).
    sampler, start = LangevinSampler(60, 0.4), torch.randn(50, 6)
    analytic = prior.sample_from(start, sampler, torch.Generator().manual_seed(3))
    prior.analytic_gradient = False
    autograd = prior.sample_from(start, sampler, torch.Generator().manual_seed(3))
    assert torch.allclose(analytic, autograd, atol=1e-4)
