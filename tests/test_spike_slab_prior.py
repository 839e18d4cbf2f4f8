"""The spike-and-slab prior of Li & Han 2022 (prior_type "spike_slab"): its density and closed-form score, exact
draws, the gradual-sparsification schedule, and a model that trains, saves, reloads and runs from the CLI with it."""

import json
import math

import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.priors import PRIORS, SpikeSlabPrior, SpikeSlabPriorConfig
from hf_latent_ebm.priors.spike_slab import spike_slab_log_density, spike_slab_score
from hf_latent_ebm.samplers.langevin import functional_potential_and_grad
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .test_modeling_latent_ebm import TINY
from .test_training import toy_images, write_image_folder

SPIKE_SLAB = dict(TINY, prior_type="spike_slab")


def spike_slab_model(seed=0, **prior_config):
    torch.manual_seed(seed)
    return LatentEBMForImageGeneration(LatentEBMConfig(**SPIKE_SLAB, prior_config=prior_config))


def prior_at(slab_weight_updates: int, **settings) -> SpikeSlabPrior:
    """A prior whose schedule has run `slab_weight_updates` updates (with no warm-up unless given)."""
    prior = SpikeSlabPrior(latent_dim=8, **{"sparsify_after_updates": 0, **settings})
    prior.num_updates.fill_(slab_weight_updates)
    return prior


# ---- density and score ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("slab_weight", [1.0, 0.5, 0.033, 0.001])
@pytest.mark.parametrize("slab_std", [1.0, 2.0])
def test_closed_form_score_is_the_gradient_of_the_log_density(slab_weight, slab_std):
    latents = torch.cat([torch.linspace(-50, 50, 2001, dtype=torch.float64),
                         torch.tensor([0.0, 1e-3, -0.05, 0.3, 7.0, 1e3], dtype=torch.float64)]).requires_grad_(True)
    log_density = spike_slab_log_density(latents, slab_weight, slab_std, 0.1)
    (expected,) = torch.autograd.grad(log_density.sum(), latents)
    score = spike_slab_score(latents.detach(), slab_weight, slab_std, 0.1)
    assert torch.isfinite(log_density).all() and torch.isfinite(score).all()
    torch.testing.assert_close(score, expected, rtol=1e-10, atol=1e-10)
    # Far out the spike is gone: the slab's score -z / s^2.
    torch.testing.assert_close(score[-1], -latents[-1].detach() / slab_std**2)


@pytest.mark.parametrize("slab_weight", [1.0, 0.5, 0.001])
def test_log_density_integrates_to_one(slab_weight):
    grid = torch.linspace(-12, 12, 240_001, dtype=torch.float64)  # step 1e-4, fine against the spike's std 0.1
    density = spike_slab_log_density(grid, slab_weight, 1.0, 0.1).exp()
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)


def test_the_prior_potential_descends_by_the_closed_form_score():
    prior = prior_at(15, sparsify_rate=1 / 30)  # a = 0.5
    assert prior.slab_weight.item() == pytest.approx(0.5)
    latents = torch.tensor([[0.0, 0.05, -0.2, 1.0, -3.0, 50.0, -50.0, 1e4]]).repeat(2, 1)
    latents[1] *= -0.5
    # Autograd through the potential (the posterior chain's eager path) uses the score, as do torch.func (the
    # compiled path) and the analytic potential_and_grad; all equal -log p0.
    tracked = latents.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(prior.potential(tracked).sum(), tracked)
    _, functional = functional_potential_and_grad(prior.potential)(latents)
    values, analytic = prior.potential_and_grad(latents)
    expected = -spike_slab_score(latents, 0.5, 1.0, 0.1)
    for grad in (autograd, functional, analytic):
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(values, -prior.reference_log_density(latents))
    torch.testing.assert_close(prior.potential(latents), prior.reference_potential(latents))
    assert torch.equal(prior.energy(latents), torch.zeros(2)) and prior.log_partition() == 0.0


# ---- draws ---------------------------------------------------------------------------------------------------
def test_reference_draws_follow_the_mixture_and_are_reproducible():
    prior = prior_at(10, sparsify_rate=0.05)  # a = 0.5
    slab_weight, spike_std = 0.5, 0.1
    draws = prior.sample_reference(20_000, torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 8)
    # P(|z| < 3 t) = a P(|N(0, 1)| < 0.3) + (1 - a) P(|N(0, t^2)| < 3 t)
    near_zero = slab_weight * math.erf(0.3 / math.sqrt(2)) + (1 - slab_weight) * math.erf(3 / math.sqrt(2))
    assert (draws.abs() < 3 * spike_std).double().mean().item() == pytest.approx(near_zero, abs=0.01)
    assert draws.double().var().item() == pytest.approx(slab_weight + (1 - slab_weight) * spike_std**2, abs=0.02)
    again = prior.sample_reference(20_000, torch.Generator().manual_seed(0))
    other = prior.sample_reference(20_000, torch.Generator().manual_seed(1))
    assert torch.equal(draws, again) and not torch.equal(draws, other)
    # No energy: the draws are the samples, and the prior chain does not move them.
    assert prior.sample_from(draws, sampler=None) is draws


def test_posterior_chains_start_at_zero():
    prior = prior_at(0)
    assert torch.equal(prior.posterior_start(3, torch.Generator().manual_seed(0)), torch.zeros(3, 8))
    # With no posterior steps the posterior latents are where the chains start, in inference and in the update.
    model = spike_slab_model(seed=0)
    model.config.sampler_config = {**model.config.sampler_config, "posterior_steps": 0}
    images = toy_images(3)
    assert torch.equal(model.eval().posterior_latents(images, torch.Generator().manual_seed(0)), torch.zeros(3, 4))
    output = model.train()(pixel_values=images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(output.posterior_latents, torch.zeros(3, 4))


# ---- the schedule --------------------------------------------------------------------------------------------
def test_slab_weight_is_one_during_warmup_then_falls_by_the_rate_to_the_floor():
    prior = SpikeSlabPrior(latent_dim=2, sparsify_after_updates=3, sparsify_rate=0.3, slab_weight_floor=0.05)
    weights = []
    for _ in range(8):
        weights.append(prior.slab_weight.item())
        prior.on_training_step()
    assert weights == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 0.1, 0.05])
    assert prior.num_updates.dtype == torch.int64 and prior.num_updates.item() == 8
    assert "num_updates" in prior.state_dict()
    # The paper's settings: 0.001 at last.
    paper = PRIORS.get("spike_slab").from_config(SpikeSlabPriorConfig(), latent_dim=2)
    paper.num_updates.fill_(12_000 + 10)
    assert paper.slab_weight.item() == pytest.approx(1 - 0.33)
    paper.num_updates.fill_(10**9)
    assert paper.slab_weight.item() == pytest.approx(0.001)


def test_training_forward_advances_the_schedule_but_evaluation_does_not():
    model = spike_slab_model(sparsify_after_updates=1, sparsify_rate=0.25)
    batch = {"pixel_values": toy_images(3)}
    model.train()
    model(**batch)
    assert model.prior.num_updates.item() == 1 and model.prior.slab_weight.item() == 1.0
    model(**batch)
    assert model.prior.num_updates.item() == 2 and model.prior.slab_weight.item() == pytest.approx(0.75)
    with torch.no_grad():
        model(**batch)
    model.eval()
    model(**batch)
    model.posterior_latents(batch["pixel_values"])
    model.sample_latents(2)
    assert model.prior.num_updates.item() == 2


# ---- training, saving, the CLI ---------------------------------------------------------------------------------
def train(output_dir, max_steps, model=None, resume=False, should_stop=None):
    args = TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, batch_size=8, seed=3, sample_every=0,
                             checkpoint_every=0, log_every=1, num_grid_samples=4)
    trainer = LatentEBMTrainer(model or spike_slab_model(sparsify_after_updates=1, sparsify_rate=0.25),
                               toy_images(), args)
    trainer.train(resume=resume, should_stop=should_stop)
    return trainer


def test_trains_saves_and_reloads_with_its_schedule(tmp_path):
    trainer = train(tmp_path / "run", max_steps=3)
    assert len(trainer.history) == 3
    assert all(math.isfinite(value) for record in trainer.history for value in record.values())
    model = trainer.model.eval()
    assert model.prior.num_updates.item() == 3 and model.prior.slab_weight.item() == pytest.approx(0.5)
    model.save_pretrained(tmp_path / "saved")
    card = (tmp_path / "saved" / "README.md").read_text()  # the prior describes itself, not as a Gaussian
    assert "spike-and-slab prior" in card and "fixed Gaussian" not in card
    for folder in (tmp_path / "saved", tmp_path / "run"):  # ours, and the trainer's final model
        loaded = AutoModel.from_pretrained(folder).eval()
        assert isinstance(loaded.prior, SpikeSlabPrior)
        assert loaded.prior.num_updates.item() == 3 and loaded.prior.slab_weight.item() == pytest.approx(0.5)
        assert loaded.config.part_config("prior") == model.config.part_config("prior")
        images = toy_images(4, seed=1)
        torch.testing.assert_close(loaded.posterior_latents(images, torch.Generator().manual_seed(5)),
                                   model.posterior_latents(images, torch.Generator().manual_seed(5)))
        torch.testing.assert_close(loaded.sample(4, torch.Generator().manual_seed(5)),
                                   model.sample(4, torch.Generator().manual_seed(5)))


def test_a_resumed_run_resumes_the_schedule(tmp_path):
    straight = train(tmp_path / "straight", max_steps=3)
    train(tmp_path / "split", max_steps=3, should_stop=lambda step: step == 2)
    resumed = train(tmp_path / "split", max_steps=3, model=spike_slab_model(seed=9, sparsify_after_updates=1,
                                                                            sparsify_rate=0.25), resume=True)
    assert resumed.model.prior.num_updates.item() == 3
    for (name, expected), (_, actual) in zip(straight.model.state_dict().items(),
                                             resumed.model.state_dict().items()):
        assert torch.equal(expected, actual), name


def test_cli_trains_it_from_config_overrides(tmp_path):
    data, out = tmp_path / "images", tmp_path / "run"
    write_image_folder(data, count=8)
    overrides = {"latent_dim": 4, "decoder_base_channels": 4, "prior_type": "spike_slab",
                 "prior_config": {"sparsify_after_updates": 1}, "sampler_config.posterior_steps": 2}
    cli_main(["train", "--dataset", str(data), "--output-dir", str(out), "--batch-size", "4", "--max-steps", "2",
              "--sample-every", "0", "--checkpoint-every", "0", "--config-overrides", json.dumps(overrides)])
    saved = json.loads((out / "config.json").read_text())
    assert saved["prior_type"] == "spike_slab" and saved["prior_config"]["sparsify_after_updates"] == 1
    model = AutoModel.from_pretrained(out)
    assert model.prior.num_updates.item() == 2
    assert model.prior.slab_weight.item() == pytest.approx(1 - 0.033)


# ---- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("learner", ["vae", "vae_ebm"])
def test_variational_learners_refuse_it(learner):
    with pytest.raises(ValueError, match="spike_slab"):
        LatentEBMConfig(**SPIKE_SLAB, learner=learner)


@pytest.mark.parametrize("prior_config, message", [
    ({"spike_std": 0.0}, "spike_std"),
    ({"spike_std": 1.0}, "spike_std"),  # not narrower than the slab
    ({"sigma": 0.5, "spike_std": 0.6}, "spike_std"),
    ({"slab_weight_floor": 2.0}, "slab_weight_floor"),
    ({"slab_weight_floor": 0.0}, "slab_weight_floor"),
    ({"sparsify_rate": -0.1}, "sparsify_rate"),
    ({"sparsify_after_updates": -1}, "sparsify_after_updates"),
    ({"sparsify_after_updates": 1.5}, "sparsify_after_updates"),  # wrong type
    ({"spike": 0.1}, "unknown field"),
    ({"hidden_dim": 8}, "unknown field"),  # the energy prior's setting
])
def test_bad_prior_config_is_refused_naming_prior_config(prior_config, message):
    with pytest.raises(ValueError, match=f"(?s)prior_config.*{message}"):
        LatentEBMConfig(**SPIKE_SLAB, prior_config=prior_config)
