import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.learners import mle_losses

from .testing_utils import ModelTesterMixin

TINY = dict(latent_dim=4, decoder_base_channels=4, energy_hidden_dim=8,
            sampler_config={"prior_steps": 4, "posterior_steps": 4})


class ImageModelTester(ModelTesterMixin):
    model_class = LatentEBMForImageGeneration
    config_class = LatentEBMConfig
    image_size, num_channels = 28, 1
    bad_config_overrides = [
        {"image_size": 30},
        {"image_size": 7},
        {"latent_dim": 0},
        {"decoder_sigma": 0.0},
        {"prior_config": {"sigma": -1.0}},
        {"prior_sigma": -1.0},  # a flat field of the old configs, converted
        {"prior_langevin_step_size": 0.0},  # a flat field of the old configs, converted
        {"sampler_config": {"prior_step_size": 0.0}},
        {"sampler_config": {"posterior_steps": -1}},
        {"sampler_config": {"posterior_step_schedule": []}},
        {"sampler_config": {"posterior_step_schedule": [0.5, -0.1]}},
        {"sampler_config": {"prior_step_schedule": []}},
        {"posterior_chain_prior": "none"},
        {"sampler_config": {"prior_step_schedule": [0.4, 0.0]}},
        {"sampler_config": {"posterior_noise_scale": -1.0}},
        {"sampler_config": {"steps": 4}},
        {"prior_config": {"activation": "tanh"}},
        {"prior_config": {"width": 8}},
        {"sampler_config": {"on_nonfinite": "ignore"}},
        {"prior_learning_rate": 0.0},
        {"decoder_lr_decay": 1.5},
        {"adam_beta1": 1.0},
        {"latent_dim": 4.5},  # wrong type: the strict dataclass rejects it
    ]

    def get_config(self, **overrides):
        return LatentEBMConfig(**{**TINY, "image_size": self.image_size, "num_channels": self.num_channels,
                                  **overrides})

    def get_inputs(self, batch_size=3, seed=0):
        generator = torch.Generator().manual_seed(seed)
        shape = (batch_size, self.num_channels, self.image_size, self.image_size)
        return {"pixel_values": torch.rand(shape, generator=generator) * 2 - 1}

    def bad_inputs(self):
        good = self.get_inputs()["pixel_values"]
        return [
            ({"pixel_values": good[:, :, :-1]}, "shape"),
            ({"pixel_values": torch.cat([good, good], dim=1)}, "shape"),
            ({"pixel_values": good[0]}, "shape"),
            ({"pixel_values": ((good + 1) * 127.5).to(torch.uint8)}, "float"),
            ({"pixel_values": good.numpy()}, "torch.Tensor"),
            ({"pixel_values": good[:0]}, "empty"),
        ]

    def bad_input_values(self):
        good = self.get_inputs()["pixel_values"]
        return [
            ({"pixel_values": (good + 1) * 127.5}, r"\[-1, 1\]"),
            ({"pixel_values": good * float("nan")}, "NaN"),
        ]


class TestGrayscale28(ImageModelTester):
    image_size, num_channels = 28, 1


class TestRGB32(ImageModelTester):
    image_size, num_channels = 32, 3


class TestGaussianPrior(ImageModelTester):
    bad_config_overrides = ImageModelTester.bad_config_overrides + [{"prior_type": "vamp"}]

    def get_config(self, **overrides):
        return super().get_config(**{"prior_type": "gaussian", **overrides})


def test_gaussian_prior_is_the_ebm_model_without_an_energy():
    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**TINY, prior_type="gaussian"))
    assert list(model.prior.parameters()) == []
    assert [group["name"] for group in model.build_optimizer().param_groups] == ["decoder"]
    pixel_values = torch.rand(4, 1, 28, 28, generator=seeded()) * 2 - 1
    output = model(pixel_values=pixel_values, generator=seeded())
    assert output.energy_loss == 0
    # Prior samples are exact N(0, sigma^2) draws: the same as the reference draw for the same seed.
    assert torch.equal(model.sample_latents(3, seeded(4)), model.prior.sample_reference(3, seeded(4)))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LatentEBMForImageGeneration(LatentEBMConfig(**TINY)).eval()


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_public_methods_shapes_and_ranges(model):
    images = model.sample(5, seeded())
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, model.sample(5, seeded()))
    reconstructions = model.reconstruct(images, seeded())
    assert reconstructions.shape == images.shape
    scores = model.anomaly_score(images, seeded())
    assert scores.shape == (5,)
    assert torch.isfinite(scores).all()


def test_anomaly_score_ranks_off_manifold_images_higher(model):
    on_manifold = model.sample(8, seeded(1))
    off_manifold = torch.rand(8, 1, 28, 28, generator=seeded(2)) * 2 - 1
    assert model.anomaly_score(off_manifold, seeded()).mean() > model.anomaly_score(on_manifold, seeded()).mean()


def test_sample_rejects_bad_batch_size(model):
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            model.sample(bad)


def test_auto_model_builds_from_config():
    model = AutoModel.from_config(LatentEBMConfig(**TINY))
    assert isinstance(model, LatentEBMForImageGeneration)


def test_learner_losses_reach_only_their_own_parameters(model):
    pixel_values = torch.rand(4, 1, 28, 28, generator=seeded()) * 2 - 1
    losses = mle_losses(model.prior, model.decoder, pixel_values, model.prior_sampler(), model.posterior_sampler(),
                        seeded())
    losses.decoder_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in model.prior.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    model.zero_grad(set_to_none=True)
    losses.energy_loss.backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.prior.parameters())


def test_optimizer_has_two_groups_with_config_learning_rates(model):
    optimizer = model.build_optimizer()
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    learner_config = model.config.part_config("learner")
    assert rates == {"prior": learner_config.prior_learning_rate, "decoder": learner_config.decoder_learning_rate}
    scheduler = model.build_lr_scheduler(optimizer)
    for _ in range(model.config.lr_decay_steps):
        optimizer.step()
        scheduler.step()
    decayed = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert decayed["prior"] == pytest.approx(rates["prior"] * learner_config.prior_lr_decay)
    assert decayed["decoder"] == pytest.approx(rates["decoder"] * learner_config.decoder_lr_decay)


def square_images() -> torch.Tensor:
    """A small fixed batch of structured images: bright squares at different places."""
    pixel_values = -torch.ones(16, 1, 28, 28)
    for index in range(16):
        row, column = divmod(index, 4)
        pixel_values[index, 0, 2 + 6 * row:8 + 6 * row, 2 + 6 * column:8 + 6 * column] = 1
    return pixel_values


def reconstruction_error_before_and_after(model, pixel_values, steps=60):
    """Reconstruction MSE (posterior latents, fixed seed) before and after `steps` updates on the batch, and the last
    update's output."""
    def reconstruction_error():
        model.eval()
        error = (model.reconstruct(pixel_values, seeded(9)) - pixel_values).pow(2).mean().item()
        model.train()
        return error

    before = reconstruction_error()
    optimizer, generator = model.build_optimizer(), seeded(3)
    for _ in range(steps):
        output = model(pixel_values=pixel_values, generator=generator)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    return before, reconstruction_error(), output


def test_learning_lowers_reconstruction_error():
    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**{**TINY, "latent_dim": 8, "decoder_base_channels": 8,
                                                          "decoder_learning_rate": 2e-3}))
    before, after, _ = reconstruction_error_before_and_after(model, square_images())
    assert after < 0.5 * before, (before, after)


def test_posterior_chain_follows_the_configured_schedule_and_temperature():
    config = LatentEBMConfig(**{**TINY, "sampler_config": {"posterior_steps": 3, "posterior_step_schedule": [0.5, 0.2],
                                                           "posterior_noise_scale": 0.1}})
    sampler = LatentEBMForImageGeneration(config).posterior_sampler()
    assert sampler.step_sizes == [0.5, 0.2, 0.2] and sampler.noise_scale == 0.1
    # An explicit step size gives a constant-step chain.
    assert LatentEBMForImageGeneration(config).posterior_sampler(step_size=0.3).step_sizes == [0.3] * 3


def test_prior_chain_follows_the_configured_schedule():
    config = LatentEBMConfig(**{**TINY, "sampler_config": {"prior_steps": 4, "prior_step_schedule": [0.4, 0.4, 0.1]}})
    model = LatentEBMForImageGeneration(config)
    assert model.prior_sampler().step_sizes == [0.4, 0.4, 0.1, 0.1]
    assert model.prior_sampler(step_size=0.2).step_sizes == [0.2] * 4
    # The schedule reaches the sampling path: it changes the samples of a fixed generator.
    plain = LatentEBMForImageGeneration(LatentEBMConfig(**{**TINY, "sampler_config": {"prior_steps": 4}}))
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        scheduled_z = model.sample_latents(8, torch.Generator().manual_seed(0))
        plain_z = plain.sample_latents(8, torch.Generator().manual_seed(0))
    assert not torch.allclose(scheduled_z, plain_z)


def test_nonfinite_chain_raises_or_resets():
    from hf_latent_ebm import LangevinDivergenceError

    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**TINY)).eval()
    with torch.no_grad():
        model.prior.energy_net[-1].bias.fill_(float("inf"))
    with pytest.raises(LangevinDivergenceError, match="non-finite"):
        model.sample(2, seeded())
    model.config.sampler_config["on_nonfinite"] = "reset"
    with pytest.warns(RuntimeWarning, match="reset"):
        latents = model.sample_latents(2, seeded())
    assert torch.isfinite(latents).all()


@pytest.mark.parametrize("chain_prior", ["model", "reference"])
def test_posterior_chain_prior_decides_whether_the_energy_steers_the_chain(chain_prior):
    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**{**TINY, "posterior_chain_prior": chain_prior})).eval()
    images = torch.rand(4, 1, 28, 28) * 2 - 1

    def posterior_and_loss():
        latents = model.posterior_latents(images, torch.Generator().manual_seed(3))
        output = model(pixel_values=images, generator=torch.Generator().manual_seed(3))
        return latents, output.posterior_latents

    before = posterior_and_loss()
    with torch.no_grad():  # a different energy: a strong pull towards z = 1
        model.prior.energy_net[-1].weight.zero_()
        model.prior.energy_net[0].bias.fill_(0.0)
        model.prior.energy_net[-1].weight[0, 0] = 50.0
    after = posterior_and_loss()
    for old, new in zip(before, after):
        assert torch.equal(old, new) == (chain_prior == "reference")


class TestImageVAE(ImageModelTester):
    """The image model with the ELBO learner and the mirrored conv encoder (a Gaussian-prior VAE)."""

    bad_config_overrides = ImageModelTester.bad_config_overrides + [{"learner": "vae", "prior_type": "ebm"},
                                                                    {"encoder_type": "lstm"}]

    def get_config(self, **overrides):
        return super().get_config(**{"learner": "vae", "prior_type": "gaussian", **overrides})


class TestImageVariationalEBM(ImageModelTester):
    bad_config_overrides = ImageModelTester.bad_config_overrides + [{"learner": "vae_ebm", "prior_type": "gaussian"},
                                                                    {"posterior_init": "encoder"}]

    def get_config(self, **overrides):
        return super().get_config(**{"learner": "vae_ebm", "vae_free_bits": 0.1, **overrides})


class TestImageEncoderInitialised(ImageModelTester):
    """Maximum likelihood whose inference chains start from a conv encoder's draws."""

    def get_config(self, **overrides):
        return super().get_config(**{"posterior_init": "encoder", **overrides})


@pytest.mark.parametrize("learner, prior_type", [("vae", "gaussian"), ("vae_ebm", "ebm")])
def test_image_model_learns_with_the_variational_learners(learner, prior_type):
    torch.manual_seed(0)
    config = LatentEBMConfig(**{**TINY, "latent_dim": 8, "decoder_base_channels": 8, "decoder_learning_rate": 2e-3,
                                "learner": learner, "prior_type": prior_type})
    model = LatentEBMForImageGeneration(config)
    assert model.encoder is not None and model.learner.infers_with_encoder
    before, after, output = reconstruction_error_before_and_after(model, square_images())
    assert {"decoder_loss", "kl_loss"} <= set(output.loss_terms)
    assert ("energy_loss" in output.loss_terms) == (prior_type == "ebm")
    assert after < 0.7 * before, (before, after)


def test_multi_output_energy_is_the_mixture_and_its_analytic_gradient_matches_autograd():
    from hf_latent_ebm.priors import EnergyPrior

    torch.manual_seed(0)
    prior = EnergyPrior(latent_dim=5, hidden_dim=16, num_hidden_layers=2, activation="gelu", reference_sigma=1.0,
                        num_outputs=3)
    latents = torch.randn(20, 5)
    components = prior.component_energies(latents)
    assert components.shape == (20, 3)
    torch.testing.assert_close(prior.energy(latents), -torch.logsumexp(-components, dim=1))
    potential, grad = prior.potential_and_grad(latents)
    reference = latents.clone().requires_grad_(True)
    (reference_grad,) = torch.autograd.grad(prior.potential(reference).sum(), reference)
    torch.testing.assert_close(potential, prior.potential(latents))
    torch.testing.assert_close(grad, reference_grad)
