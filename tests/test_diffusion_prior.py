"""The diffusion-assisted prior and learner of Cui & Han (ICML 2024; issue 34, item 2): the noise schedule, learning
a two-mode latent distribution that one short chain from N(0, I) cannot, the model checks of the shared tester mixin,
and the config's refusals."""

import pytest
import torch

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.learners.diffusion import recovery_losses
from hf_latent_ebm.priors import PRIORS, DiffusionPrior, DiffusionPriorConfig
from hf_latent_ebm.priors.diffusion import noise_levels
from hf_latent_ebm.samplers import LangevinSampler
from hf_latent_ebm.utils import merge_config_kwargs

from .test_modeling_latent_ebm import TINY, ImageModelTester

DIFFUSION = dict({key: value for key, value in TINY.items() if key != "energy_hidden_dim"}, prior_type="diffusion",
                 learner="diffusion", prior_config={"num_stages": 3, "hidden_dim": 8, "time_embedding_dim": 4})


def test_the_noise_schedule_runs_from_the_latents_to_pure_noise():
    levels = noise_levels(4)
    assert levels.shape == (5,) and levels[0] == 1 and levels[-1] == 0 and bool((levels.diff() < 0).all())
    # The paper's schedule read at step 250 of 1000: prod(1 - beta) with betas linear from 1e-4 to 0.02.
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert float(levels[1]) == pytest.approx(float(torch.prod(1 - betas[:250])), rel=1e-5)
    prior = DiffusionPrior.from_config(DiffusionPriorConfig(num_stages=4), latent_dim=2)
    for scale, std in zip(prior.scales[1:], prior.noise_stds[1:]):
        assert scale**2 + std**2 == pytest.approx(1, abs=1e-6)
    assert prior.scales[-1] == 0  # the last stage forgets the latents: its chain starts from noise


def test_a_noised_pair_has_the_forward_process_statistics():
    prior = DiffusionPrior.from_config(DiffusionPriorConfig(num_stages=4), latent_dim=1)
    clean = torch.full((20000, 1), 2.0)
    stages = torch.full((20000,), 1)
    noised, above = prior.noised_pair(clean, stages, torch.Generator().manual_seed(0))
    alpha_bar, next_bar = prior.alpha_bars[1], prior.alpha_bars[2]
    assert float(noised.mean()) == pytest.approx(2 * alpha_bar**0.5, abs=0.03)
    assert float(noised.var()) == pytest.approx(1 - alpha_bar, abs=0.03)
    assert float(above.mean()) == pytest.approx(2 * next_bar**0.5, abs=0.03)


def test_recovery_likelihood_learns_two_modes_a_short_chain_from_noise_then_samples():
    """Latents at -2 and +2: after training, prior draws (stage by stage from noise) land near both modes."""
    torch.manual_seed(0)
    prior = DiffusionPrior.from_config(DiffusionPriorConfig(num_stages=4, hidden_dim=64), latent_dim=1)
    sampler = LangevinSampler(15, 0.3)
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)

    def modes(count):
        signs = torch.randint(2, (count, 1), generator=generator) * 2 - 1
        return 2.0 * signs + 0.2 * torch.randn(count, 1, generator=generator)

    draws_before = prior.sample(2000, sampler, torch.Generator().manual_seed(2))
    for _ in range(150):
        loss, *_ = recovery_losses(prior, modes(256), sampler, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    draws = prior.sample(2000, sampler, torch.Generator().manual_seed(2)).squeeze(1)
    near_a_mode = ((draws.abs() - 2).abs() < 0.7).float().mean()
    assert float(((draws_before.abs() - 2).abs() < 0.7).float().mean()) < 0.4  # N(0, 1)-like before
    assert float(near_a_mode) > 0.7 and 0.3 < float((draws > 0).float().mean()) < 0.7, draws


class TestDiffusionPriorModel(ImageModelTester):
    bad_config_overrides = ImageModelTester.bad_config_overrides + [
        {"prior_config": {"num_stages": 1}}, {"learner": "mle"}, {"prior_config": {"time_embedding_dim": 0}}]

    def get_config(self, **overrides):
        return LatentEBMConfig(**merge_config_kwargs(DIFFUSION, overrides))


def test_the_model_learns_saves_and_samples_the_same_after_reloading(tmp_path):
    from transformers import AutoModel

    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**DIFFUSION))
    optimizer = model.build_optimizer()
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for _ in range(2):
        output = model(pixel_values=images, generator=torch.Generator().manual_seed(1))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    assert {"decoder_loss", "energy_loss", "energy_difference"} <= set(output.loss_terms)
    assert any(parameter.grad is not None and parameter.grad.abs().sum() > 0
               for parameter in model.prior.stage_embedding.parameters())
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    model.eval()
    assert torch.equal(reloaded.sample(3, torch.Generator().manual_seed(5)),
                       model.sample(3, torch.Generator().manual_seed(5)))
    assert "conditional EBMs" in (tmp_path / "README.md").read_text()


def test_the_prior_and_the_learner_require_each_other():
    assert PRIORS.get("diffusion") is DiffusionPrior
    with pytest.raises(ValueError, match="learned by learner='diffusion'"):
        LatentEBMConfig(**{**DIFFUSION, "learner": "mle"})
    with pytest.raises(ValueError, match="use prior_type='diffusion'"):
        LatentEBMConfig(**{**DIFFUSION, "prior_type": "ebm", "prior_config": {}})
