"""The chains' fast path (each Langevin step one compiled function) against the eager loop, the fast-path settings
and the decoder's bfloat16 autocast. Compiling on the CPU needs a C++ compiler and takes seconds per graph, so the
compiled tests share a few tiny shapes."""

import shutil

import pytest
import torch

from hf_latent_ebm import (LangevinDivergenceError, LangevinSampler, LatentEBMConfig, LatentEBMForImageGeneration, LatentEBMForTextGeneration,
                           LatentEBMTextConfig)
from hf_latent_ebm.samplers.langevin import functional_potential_and_grad, langevin_steps, resolve_fast_path

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                    reason="torch.compile on the CPU needs a C++ compiler")
# Compiled kernels reassociate sums (the convolutions' backward most), so chains agree to float32 rounding, not
# bit for bit; over a handful of steps that stays well inside these.
CHAIN_TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def compiled_graph_count() -> int:
    """Graphs torch.compile holds for the one Langevin step every chain shares."""
    return len(torch._dynamo.eval_frame._debug_get_cache_entry_list(langevin_steps.__code__))


def quadratic(latents):
    return ((latents - 1.5) ** 2 / 1.2).sum(dim=1)


def tiny_config(sampler_config=None, **overrides):
    return LatentEBMConfig(latent_dim=8, decoder_base_channels=4, energy_hidden_dim=16,
                           sampler_config={"prior_steps": 6, "posterior_steps": 4, **(sampler_config or {})},
                           **overrides)


def image_batch(batch_size=6, seed=0):
    return torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def seeded(seed):
    return torch.Generator().manual_seed(seed)


# ---- settings ------------------------------------------------------------------------------------------------------
def test_auto_compiles_on_cuda_only():
    assert resolve_fast_path("auto", torch.device("cpu")) == "eager"
    assert resolve_fast_path("auto", torch.device("cuda")) == "compile"
    assert resolve_fast_path("compile", torch.device("cpu")) == "compile"
    assert resolve_fast_path("eager", torch.device("cuda")) == "eager"


def test_auto_keeps_decoders_that_do_not_compile_eager():
    model = LatentEBMForImageGeneration(tiny_config())
    assert model.prior_sampler().fast_path == model.posterior_sampler().fast_path == "auto"
    text = LatentEBMForTextGeneration(LatentEBMTextConfig(vocab_size=20, latent_dim=4, embedding_dim=8,
                                                          decoder_hidden_dim=8, energy_hidden_dim=8))
    assert text.prior_sampler().fast_path == "auto"  # the prior's energy compiles
    assert text.posterior_sampler().fast_path == "eager"  # packed recurrences do not


@pytest.mark.parametrize("make_config, message", [
    (lambda: tiny_config({"fast_path": "fast"}), "(?s)sampler_config.*fast_path must be one of"),
    (lambda: LatentEBMTextConfig(vocab_size=20, sampler_config={"fast_path": "compile"}),
     "declares compilable=True"),
    (lambda: tiny_config(decoder_autocast="float16"), "decoder_autocast must be None or one of"),
])
def test_bad_fast_path_settings_are_rejected(make_config, message):
    with pytest.raises(ValueError, match=message):
        make_config()


def test_sampler_rejects_an_unknown_fast_path():
    with pytest.raises(ValueError, match="fast_path must be one of"):
        LangevinSampler(3, 0.1, fast_path="graphs")


def test_functional_gradient_matches_autograd_and_leaves_parameters_alone():
    layer = torch.nn.Linear(5, 1)
    potential = lambda latents: layer(latents).squeeze(1) + latents.pow(2).sum(1)  # noqa: E731
    latents = torch.randn(4, 5)
    with torch.no_grad():  # the chains run under no_grad; the gradient in z must not care
        values, grad = functional_potential_and_grad(potential)(latents)
    z = latents.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(potential(z).sum(), z)
    assert torch.allclose(values, potential(latents)) and torch.allclose(grad, expected, atol=1e-6)
    assert not values.requires_grad and layer.weight.grad is None


# ---- the compiled chain against the eager one -----------------------------------------------------------------------
@needs_compiler
def test_compiled_chain_is_the_eager_chain_for_the_same_noise():
    start = torch.randn(5, 3, generator=seeded(0))
    for kwargs in ({"step_size": [0.4, 0.2, 0.1]}, {"step_size": 0.3, "noise_scale": 0.5},
                   {"step_size": 0.3, "add_noise": False}):
        outputs = [LangevinSampler(6, fast_path=fast_path, **kwargs)(quadratic, start, seeded(1),
                                                                     return_diagnostics=True)
                   for fast_path in ("eager", "compile")]
        for name in ("latents", "energies", "grad_norms"):
            assert torch.allclose(getattr(outputs[0], name), getattr(outputs[1], name), **CHAIN_TOLERANCE), name
    assert compiled_graph_count() >= 1


@needs_compiler
def test_compiled_chain_raises_on_divergence_and_checks_the_energy_shape():
    start = torch.ones(3, 2)
    with pytest.raises(LangevinDivergenceError, match="non-finite"):
        LangevinSampler(10, 1.0, fast_path="compile")(lambda z: torch.exp(z.pow(2) * 30).sum(1), start)
    with pytest.raises(ValueError, match="one value per chain"):
        LangevinSampler(2, 0.1, fast_path="compile")(lambda z: z.sum(), torch.randn(3, 2))


@needs_compiler
def test_compiled_training_step_matches_eager_and_reuses_its_graphs():
    batch = image_batch()
    outputs, gradients = {}, {}
    for fast_path in ("eager", "compile"):
        torch.manual_seed(0)
        model = LatentEBMForImageGeneration(tiny_config({"fast_path": fast_path}))
        output = model(batch, generator=seeded(3))
        output.loss.backward()
        outputs[fast_path] = output
        gradients[fast_path] = [parameter.grad for parameter in model.parameters()]
    eager, compiled = outputs["eager"], outputs["compile"]
    assert torch.allclose(eager.loss, compiled.loss, rtol=1e-5)
    for name in ("posterior_latents", "prior_latents"):
        assert torch.allclose(getattr(eager, name), getattr(compiled, name), **CHAIN_TOLERANCE), name
    for expected, got in zip(gradients["eager"], gradients["compile"]):
        assert torch.allclose(expected, got, rtol=1e-3, atol=1e-5)
    assert not compiled.posterior_latents.requires_grad

    # New observations and updated weights replay the graphs already compiled; only a new shape compiles again.
    graphs = compiled_graph_count()
    model(image_batch(seed=1), generator=seeded(4)).loss.backward()
    assert compiled_graph_count() == graphs
    eager_model = LatentEBMForImageGeneration(tiny_config({"fast_path": "eager"}))
    eager_model.load_state_dict(model.state_dict())
    assert torch.allclose(model.sample_latents(9, seeded(5)), eager_model.sample_latents(9, seeded(5)),
                          **CHAIN_TOLERANCE)


@needs_compiler
def test_short_training_runs_give_the_same_loss_curve():
    curves = {}
    for fast_path in ("eager", "compile"):
        torch.manual_seed(0)
        model = LatentEBMForImageGeneration(tiny_config({"fast_path": fast_path}))
        optimizer, generator, curve = model.build_optimizer(), seeded(7), []
        for step in range(6):
            loss = model(image_batch(seed=step), generator=generator).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        curves[fast_path] = torch.tensor(curve)
    assert torch.allclose(curves["eager"], curves["compile"], rtol=1e-4), curves


# ---- bfloat16 autocast of the decoder --------------------------------------------------------------------------------
def test_decoder_autocast_keeps_the_prior_in_float32_and_the_loss_close():
    batch, losses = image_batch(), {}
    for autocast in (None, "bfloat16"):
        torch.manual_seed(0)
        model = LatentEBMForImageGeneration(tiny_config({"noise": False}, decoder_autocast=autocast))
        start = torch.zeros(6, 8)
        potential = model.posterior_chain_potential(batch)
        assert potential(start).dtype == torch.float32
        output = model(batch, generator=seeded(3))
        output.loss.backward()
        assert all(parameter.grad.dtype == torch.float32 for parameter in model.parameters())
        losses[autocast] = output.loss_terms["decoder_loss"]
    # bfloat16 keeps 8 bits of mantissa: a sum of squared errors agrees to about a percent, and differs.
    assert torch.allclose(losses[None], losses["bfloat16"], rtol=0.03)
    assert not torch.equal(losses[None], losses["bfloat16"])


@needs_compiler
@pytest.mark.parametrize("parts", [
    dict(latent_dim=6, prior_type="hierarchical", decoder_type="ladder",
         prior_config={"layer_sizes": [4, 2], "hidden_dim": 8, "conditional_hidden_dim": 8},
         decoder_config={"layer_sizes": [4, 2], "hidden_dim": 8, "base_channels": 4}),
    dict(latent_dim=6, prior_type="diffusion", learner="diffusion", decoder_config={"base_channels": 4},
         prior_config={"num_stages": 3, "hidden_dim": 8, "time_embedding_dim": 4}),
], ids=["hierarchical-ladder", "diffusion"])
def test_the_layered_and_staged_parts_run_the_same_chains_compiled(parts):
    """The parts of issue 34 declare `compilable`: their chains through the compiled step equal the eager ones."""
    batch, outputs = image_batch(), {}
    for fast_path in ("eager", "compile"):
        torch.manual_seed(0)
        model = LatentEBMForImageGeneration(LatentEBMConfig(
            **parts, sampler_config={"prior_steps": 4, "posterior_steps": 3, "fast_path": fast_path}))
        assert model.learner_context.posterior_sampler.fast_path == fast_path  # nothing fell back to eager
        outputs[fast_path] = model(batch, generator=seeded(3)), model.sample_latents(4, seeded(5))
    (eager, eager_samples), (compiled, compiled_samples) = outputs["eager"], outputs["compile"]
    assert torch.allclose(eager.loss, compiled.loss, rtol=1e-5)
    for name in ("posterior_latents", "prior_latents"):
        assert torch.allclose(getattr(eager, name), getattr(compiled, name), **CHAIN_TOLERANCE), name
    assert torch.allclose(eager_samples, compiled_samples, **CHAIN_TOLERANCE)
