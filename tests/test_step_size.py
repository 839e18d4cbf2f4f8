"""Short-run inference with a learned step size (Nijkamp et al. 2020, SRI; issue 34, item 2): the objective on a toy
whose value is known in closed form, the search, and the MLE learner's option (written to the config, saved)."""

import math

import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.samplers import LangevinSampler
from hf_latent_ebm.samplers.step_size import short_run_objective, tune_step_size

from .test_modeling_latent_ebm import TINY
from .test_training import toy_images

SIGMA, STEPS, DIM = 0.5, 5, 2


def gaussian_potential(latents):
    return latents.pow(2).sum(dim=1) / (2 * SIGMA**2)


def closed_form_objective(step_size):
    """For U = |z|^2 / (2 sigma^2) from z_0 ~ N(0, I) each step is z <- a z + s noise with a = 1 - s^2 / (2 sigma^2):
    z_K has variance a^(2K) + s^2 sum_j a^(2j) per coordinate and the flow's log |det J| is dim K log |a|."""
    a = 1 - step_size**2 / (2 * SIGMA**2)
    variance = a ** (2 * STEPS) + step_size**2 * sum(a ** (2 * j) for j in range(STEPS))
    return -DIM * variance / (2 * SIGMA**2) + DIM * STEPS * math.log(abs(a))


def test_the_objective_matches_its_closed_form_on_a_gaussian_target():
    sampler = LangevinSampler(STEPS, 0.3)
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(4000, DIM, generator=generator, dtype=torch.float64)
    noises = torch.randn(STEPS, 4000, DIM, generator=generator, dtype=torch.float64)
    for step_size in (0.1, 0.3, 0.6):
        estimate = short_run_objective(sampler, gaussian_potential, start, step_size, noises)
        assert estimate.shape == (4000,)
        assert float(estimate.mean()) == pytest.approx(closed_form_objective(step_size), abs=0.05)


def test_the_search_picks_the_best_candidate_and_moves_a_bad_step():
    factors = [0.25, 0.5, 1.0, 2.0, 4.0]
    start = torch.randn(2000, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sampler = LangevinSampler(STEPS, 0.05)
    best, objectives = tune_step_size(sampler, gaussian_potential, start, factors, torch.Generator().manual_seed(2))
    truth = {size: closed_form_objective(size) for size in objectives}
    assert best == max(truth, key=truth.get) == pytest.approx(0.2)  # a tiny step is raised
    # Repeated searches travel towards the best step of the closed form, whatever the start.
    best_overall = max((size / 100 for size in range(1, 140)), key=closed_form_objective)
    step = 0.05
    for round_ in range(4):
        step, _ = tune_step_size(LangevinSampler(STEPS, step), gaussian_potential, start, [0.7, 1.0, 1.41],
                                 torch.Generator().manual_seed(100 + round_))  # not the start's seed
    assert abs(step - best_overall) < 0.2 * best_overall


def test_a_step_schedule_or_another_sampler_cannot_be_tuned():
    start = torch.randn(4, DIM)
    with pytest.raises(ValueError, match="posterior_step_schedule"):
        tune_step_size(LangevinSampler(3, [0.3, 0.1]), gaussian_potential, start, [1.0])
    with pytest.raises(ValueError, match="Langevin sampler"):
        tune_step_size(object(), gaussian_potential, start, [1.0])


def test_a_diverging_candidate_is_not_chosen():
    start = torch.randn(16, DIM, generator=torch.Generator().manual_seed(0))
    best, objectives = tune_step_size(LangevinSampler(30, 0.5), gaussian_potential, start, [1.0, 20.0])
    assert objectives[10.0] == float("-inf") and best == 0.5


def searching_model(**learner_config):
    torch.manual_seed(0)
    config = LatentEBMConfig(**dict(TINY, learner_config={"step_size_search_every": 2, "step_size_search_batch": 4,
                                                          **learner_config}))
    return LatentEBMForImageGeneration(config)


def test_the_mle_learner_writes_the_tuned_step_into_the_config_and_a_saved_model_keeps_it(tmp_path):
    model = searching_model(step_size_search_factors=[0.5, 2.0])  # the configured 0.1 is not a candidate
    images = toy_images(8)
    output = model(pixel_values=images)
    tuned = model.config.sampler_config["posterior_step_size"]
    assert tuned in (0.05, 0.2) and float(output.loss_terms["posterior_step_size"]) == pytest.approx(tuned)
    assert model.learner_context.posterior_sampler.step_sizes[0] == pytest.approx(tuned)
    assert "posterior_step_size" not in model(pixel_values=images).loss_terms  # every 2nd update only
    model.eval()  # an evaluation pass neither searches nor counts as an update
    assert "posterior_step_size" not in model(pixel_values=images).loss_terms
    model.train()
    assert "posterior_step_size" in model(pixel_values=images).loss_terms  # the 3rd update searches again
    tuned = model.config.sampler_config["posterior_step_size"]
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert reloaded.config.sampler_config["posterior_step_size"] == tuned
    assert reloaded.learner_context.posterior_sampler.step_sizes[0] == pytest.approx(tuned)


def test_without_the_option_the_step_is_left_alone():
    model = searching_model(step_size_search_every=0)
    output = model(pixel_values=toy_images(8))
    assert "posterior_step_size" not in model.config.sampler_config and "posterior_step_size" not in output.loss_terms


def test_a_schedule_with_the_search_fails_at_the_first_update_with_a_clear_error():
    model = searching_model()
    model.config.sampler_config = {**model.config.sampler_config, "posterior_step_schedule": [0.3, 0.1]}
    with pytest.raises(ValueError, match="posterior_step_schedule"):
        model(pixel_values=toy_images(8))


@pytest.mark.parametrize("bad", [{"step_size_search_every": -1}, {"step_size_search_factors": []},
                                 {"step_size_search_factors": [1.0, -2.0]}, {"step_size_search_batch": 0}])
def test_bad_search_settings_are_refused_by_the_config(bad):
    with pytest.raises(ValueError, match="step_size_search"):
        LatentEBMConfig(**dict(TINY, learner_config=bad))


def test_training_with_the_search_saves_the_tuned_step(tmp_path):
    from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

    model = searching_model(step_size_search_factors=[0.5, 3.0])  # two searches cannot come back to 0.1
    arguments = TrainingArguments(output_dir=str(tmp_path), max_steps=3, batch_size=8, sample_every=0,
                                  checkpoint_every=0)
    LatentEBMTrainer(model, toy_images(16), arguments).train()
    tuned = model.config.sampler_config["posterior_step_size"]
    assert tuned != 0.1 and AutoModel.from_pretrained(tmp_path).config.sampler_config["posterior_step_size"] == tuned
