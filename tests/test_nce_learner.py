"""The adaptive multi-stage density-ratio (NCE) learner of Xiao & Han 2022, registered as learner "nce": its objective
recovers a known ratio, its stages follow the schedule with a frozen snapshot and one prior-chain bank per stage, and
a model trains with it through the trainer and the CLI, saves and reloads."""

import copy
import dataclasses
import json
import math

import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMConfig, LatentEBMModel, LatentEBMModelConfig
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.learners import LEARNERS, MultiStageNCEConfig, MultiStageNCELearner, nce_losses
from hf_latent_ebm.learners.nce import BANK_CHUNK_SIZE
from hf_latent_ebm.priors.energy import EnergyPrior
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .test_extending import SETTINGS as FACTOR_SETTINGS, factor_data  # also registers "linear_gaussian"
from .test_training import write_image_folder

TINY = dict(latent_dim=2, energy_hidden_dim=8, sampler_config={"prior_steps": 4, "posterior_steps": 3},
            decoder_kwargs={"observation_dim": 5})


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- the objective alone ---------------------------------------------------------------------------------------
def gaussian(mean, std):
    return lambda count, generator: mean + std * torch.randn(count, 1, generator=generator)


def fit_stage(prior, snapshot, positives, negatives, generator, steps=150, batch_size=512):
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = nce_losses(prior.energy, snapshot.energy if snapshot is not None else None,
                          positives(batch_size, generator), negatives(batch_size, generator))["nce_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@torch.no_grad()
def prior_draws(prior, generator, count=200_000):
    """Draws of p0 with their self-normalised importance weights under p = exp(-E) p0 / Z."""
    latents = torch.randn(count, 1, generator=generator)
    return latents, torch.softmax(-prior.energy(latents), dim=0)


def prior_moments(prior, generator):
    latents, weights = prior_draws(prior, generator)
    mean = (weights * latents[:, 0]).sum()
    return mean.item(), (weights * (latents[:, 0] - mean) ** 2).sum().sqrt().item()


def prior_bank(prior, generator, count=5000):
    """Exact (resampled) draws of the prior: stage 2's negatives, without the chain's bias."""
    latents, weights = prior_draws(prior, generator)
    return latents[torch.multinomial(weights, count, replacement=True, generator=generator)]


def test_the_nce_objective_recovers_a_known_density_ratio():
    torch.manual_seed(0)
    generator = seeded(0)
    prior = EnergyPrior(1, 32, 2, "gelu", reference_sigma=1.0)
    # One stage against p0 recovers q = N(1.5, 0.5^2): the prior's mean and std are q's.
    fit_stage(prior, None, gaussian(1.5, 0.5), gaussian(0.0, 1.0), generator)
    mean, std = prior_moments(prior, generator)
    assert abs(mean - 1.5) < 0.15 and abs(std - 0.5) < 0.1, (mean, std)


def test_a_second_stage_corrects_a_first_stage_far_from_the_target():
    # q = N(3, 0.4^2) lies in p0's tail: the single-stage classifier sees few negatives there and overshoots.
    torch.manual_seed(1)
    generator = seeded(1)
    prior = EnergyPrior(1, 32, 2, "gelu", reference_sigma=1.0)
    fit_stage(prior, None, gaussian(3.0, 0.4), gaussian(0.0, 1.0), generator)
    first = prior_moments(prior, generator)
    snapshot = copy.deepcopy(prior).requires_grad_(False)
    bank = prior_bank(snapshot, generator)
    fit_stage(prior, snapshot, gaussian(3.0, 0.4), lambda count, g: bank[torch.randint(len(bank), (count,),
                                                                                       generator=g)], generator)
    second = prior_moments(prior, generator)
    errors = [abs(mean - 3.0) + abs(std - 0.4) for mean, std in (first, second)]
    assert errors[1] <= errors[0] and errors[1] < 0.25, (first, second)


def test_the_objective_is_log_four_at_a_stage_start_and_reaches_only_the_energy():
    prior = EnergyPrior(2, 8, 1, "gelu", reference_sigma=1.0)
    snapshot = copy.deepcopy(prior).requires_grad_(False)
    positives, negatives = torch.randn(6, 2), torch.randn(4, 2)
    terms = nce_losses(prior.energy, snapshot.energy, positives, negatives)
    # E = E_snapshot: h = 0 everywhere, the classifier at chance.
    torch.testing.assert_close(terms["nce_loss"], torch.tensor(4.0).log())
    assert terms["nce_accuracy"].item() == 0.5 and not terms["nce_accuracy"].requires_grad
    terms["nce_loss"].backward()
    assert all(parameter.grad is not None for parameter in prior.parameters())
    assert all(parameter.grad is None for parameter in snapshot.parameters())


# ---- the stage schedule ----------------------------------------------------------------------------------------
class CountingSampler:
    """Wraps the prior chain and records the number of chains of each call."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, potential, latents, *args, **kwargs):
        self.calls.append(len(latents))
        return self.inner(potential, latents, *args, **kwargs)


def test_stages_follow_the_schedule_with_a_frozen_snapshot_and_one_bank_each():
    torch.manual_seed(0)
    bank_size = BANK_CHUNK_SIZE + 3  # two chain calls per bank
    model = LatentEBMModel(LatentEBMModelConfig(**TINY, learner="nce", learner_config={
        "stage_updates": 2, "num_stages": 3, "negative_bank_size": bank_size})).train()
    learner = model.learner
    assert type(learner) is MultiStageNCELearner and model.encoder is None
    sampler = CountingSampler(model.learner_context.prior_sampler)
    context = dataclasses.replace(model.learner_context, prior_sampler=sampler)
    optimizer = model.build_optimizer()
    observations, generator = torch.randn(8, 5), seeded(0)
    stages, calls, snapshots = [], [], []
    for update in range(7):
        output = learner.losses(context, observations, {}, generator)
        stages.append(output.terms["stage"].item())
        calls.append(list(sampler.calls))
        snapshots.append(learner.snapshot)
        assert output.prior_latents.shape == (8, 2) and torch.isfinite(output.loss)
        if update in (2, 4):  # a stage's first update: the snapshot is the prior as it was then
            for frozen, live in zip(learner.snapshot.parameters(), model.prior.parameters()):
                assert torch.equal(frozen, live) and not frozen.requires_grad
            assert learner.negative_bank.shape == (bank_size, 2)
        if update == 3:
            assert snapshots[3] is snapshots[2]
            assert all(torch.equal(frozen, stage_start) for frozen, stage_start in
                       zip(learner.snapshot.parameters(), snapshot_at_stage_start))
            assert not all(torch.equal(frozen, live) for frozen, live in
                           zip(learner.snapshot.parameters(), model.prior.parameters()))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        if update == 2:
            snapshot_at_stage_start = [parameter.clone() for parameter in learner.snapshot.parameters()]
    assert stages == [0, 0, 1, 1, 2, 2, 2]
    # The prior chain ran only at the two stage starts, each time for one bank (in chunks), never per update.
    one_bank = [BANK_CHUNK_SIZE, 3]
    assert calls == [[], [], one_bank, one_bank, 2 * one_bank, 2 * one_bank, 2 * one_bank]
    assert snapshots[4] is not snapshots[2] and snapshots[5] is snapshots[4] is snapshots[6]
    # The state is transient: the saved weights are the model's own.
    assert set(model.state_dict()) == set(LatentEBMModel(model.config).state_dict())

    # No update counts in eval mode or without gradients; such calls use the current stage.
    model.eval()
    assert learner.losses(context, observations, {}, generator).terms["stage"].item() == 2
    model.train()
    with torch.no_grad():
        learner.losses(context, observations, {}, generator)
    assert learner.num_updates == 7 and len(sampler.calls) == 4


def test_inference_before_training_uses_stage_zero():
    model = LatentEBMModel(LatentEBMModelConfig(**TINY, learner="nce")).eval()
    output = model(observations=torch.randn(3, 5), generator=seeded(0))
    assert output.loss_terms["stage"].item() == 0 and model.learner.num_updates == 0
    assert model.posterior_latents(torch.randn(3, 5), seeded(1)).shape == (3, 2)


# ---- a model trained with it -----------------------------------------------------------------------------------
def bimodality(latents):
    """Sarle's bimodality coefficient of the latents' projection on their first principal axis (> 5/9: bimodal;
    a Gaussian gives 1/3)."""
    centred = latents - latents.mean(dim=0)
    projection = centred @ torch.linalg.svd(centred, full_matrices=False).Vh[0]
    projection = (projection - projection.mean()) / projection.std()
    return (((projection**3).mean() ** 2 + 1) / (projection**4).mean()).item()


def test_the_factor_toy_trains_saves_and_reloads(tmp_path):
    torch.manual_seed(0)
    model = LatentEBMModel(LatentEBMModelConfig(**FACTOR_SETTINGS, learner="nce", learner_config={
        "stage_updates": 100, "num_stages": 3, "negative_bank_size": 1000}))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=300, batch_size=32, seed=1, sample_every=0,
                             checkpoint_every=0, log_every=10, num_grid_samples=4)
    LatentEBMTrainer(model, factor_data(), args).train()  # raises on a non-finite loss
    history = json.loads((tmp_path / "loss_history.json").read_text())
    assert set(history[-1]) == {"step", "decoder_loss", "nce_loss", "nce_accuracy", "stage", "energy_difference",
                                "posterior_chain_grad_norm"}
    assert [record["stage"] for record in history] == [0] * 10 + [1] * 10 + [2] * 10
    # Stage 0 classifies z+ against p0 from chance (log 4) to better; the decoder learns.
    stage_zero = [record["nce_loss"] for record in history[:10]]
    assert stage_zero[0] > 1.35 and sum(stage_zero[-3:]) / 3 < stage_zero[0] - 0.03, stage_zero
    assert history[-1]["decoder_loss"] < 0.2 * history[0]["decoder_loss"]
    # The data's z is bimodal; the prior's samples move from p0's Gaussian towards it (0.52 to 0.65 over four
    # seeds, 0.65 for this one; the Gaussian's coefficient is 1/3, 5/9 marks bimodal).
    model.eval()
    gaussian_draws = torch.randn(2000, 2, generator=seeded(0))
    assert bimodality(model.sample_latents(2000, seeded(0))) > 0.45 > bimodality(gaussian_draws)

    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is LatentEBMModel and type(loaded.learner) is MultiStageNCELearner
    assert loaded.learner.num_updates == 0  # the schedule is not saved
    assert torch.equal(loaded.sample(5, seeded(3)), model.sample(5, seeded(3)))
    observations = torch.tensor(factor_data(8, seed=1)["observations"])
    torch.testing.assert_close(loaded.posterior_latents(observations, seeded(4)),
                               model.posterior_latents(observations, seeded(4)))


def test_the_cli_trains_it_from_config_overrides(tmp_path):
    data, out = tmp_path / "images", tmp_path / "run"
    write_image_folder(data)
    overrides = json.dumps({"latent_dim": 4, "decoder_base_channels": 4, "prior_config.hidden_dim": 8,
                            "sampler_config.prior_steps": 3, "sampler_config.posterior_steps": 3, "learner": "nce",
                            "learner_config": {"stage_updates": 2, "negative_bank_size": 16}})
    cli_main(["train", "--dataset", str(data), "--output-dir", str(out), "--batch-size", "4", "--max-steps", "5",
              "--checkpoint-every", "0", "--sample-every", "0", "--config-overrides", overrides])
    config = json.loads((out / "config.json").read_text())
    assert config["learner"] == "nce" and config["learner_config"]["stage_updates"] == 2
    record = json.loads((out / "loss_history.json").read_text())[-1]
    assert record["stage"] == 2 and all(map(math.isfinite, record.values()))
    assert type(AutoModel.from_pretrained(out).learner) is MultiStageNCELearner


# ---- bad input -------------------------------------------------------------------------------------------------
def test_bad_configs_are_refused():
    assert LEARNERS.get("nce") is MultiStageNCELearner and LEARNERS.config_class("nce") is MultiStageNCEConfig
    with pytest.raises(ValueError, match="learner='nce'.*prior_type='gaussian' has no energy"):
        LatentEBMModelConfig(learner="nce", prior_type="gaussian")
    with pytest.raises(ValueError, match="has no energy"):
        LatentEBMConfig(learner="nce", prior_type="gaussian")
    for bad, message in [({"num_stages": 0}, "num_stages must be >= 1"),
                         ({"stage_updates": 0}, "stage_updates must be >= 1"),
                         ({"negative_bank_size": 0}, "negative_bank_size must be >= 1"),
                         ({"num_stage": 2}, r"unknown field\(s\) \['num_stage'\]"),
                         ({"posterior_init": "encoder"}, r"unknown field\(s\) \['posterior_init'\]")]:
        with pytest.raises(ValueError, match=f"(?s)learner_config.*{message}"):
            LatentEBMModelConfig(**TINY, learner="nce", learner_config=bad)
