"""`forward` checks batch values (range, NaN, label ids) unless the caller vouches for them, as the trainer does."""

import pytest
import torch

from hf_latent_ebm import (LatentEBMClassificationConfig, LatentEBMConfig, LatentEBMForImageGeneration,
                           LatentEBMForSemiSupervisedClassification)
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from .test_modeling_latent_ebm import TINY


def image_model():
    torch.manual_seed(0)
    return LatentEBMForImageGeneration(LatentEBMConfig(**TINY))


def message(call) -> str:
    with pytest.raises(ValueError) as error:
        call()
    return str(error.value)


def test_forward_refuses_unscaled_and_nan_pixels_as_the_public_calls_do():
    model = image_model()
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    unscaled = (images + 1) * 127.5  # [0, 255] floats
    assert message(lambda: model(pixel_values=unscaled)) == message(lambda: model.anomaly_score(unscaled))
    nan = images.clone()
    nan[0, 0, 0, 0] = float("nan")
    assert "NaN" in message(lambda: model(pixel_values=nan))
    assert torch.isfinite(model(pixel_values=images).loss)
    with model.inputs_checked():  # the caller vouches: only type, dtype and shape are looked at
        model(pixel_values=unscaled)
        with pytest.raises(ValueError, match="shape"):
            model(pixel_values=images[:, :, :27])
    assert not model._inputs_checked
    assert message(lambda: model(pixel_values=unscaled)) == message(lambda: model.anomaly_score(unscaled))


def test_forward_refuses_out_of_range_labels():
    model = LatentEBMForSemiSupervisedClassification(LatentEBMClassificationConfig(
        decoder_config={"observation_dim": 3}, encoder_config={"observation_dim": 3}, num_labels=2, latent_dim=2,
        energy_hidden_dim=4, sampler_config={"prior_steps": 2}))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        model(observations=torch.randn(3, 3), labels=torch.tensor([0, 5, -100]))


def test_training_steps_do_not_recheck_the_checked_data(tmp_path, monkeypatch):
    model = image_model()
    trainer = LatentEBMTrainer(model, torch.rand(16, 1, 28, 28) * 2 - 1,
                               TrainingArguments(output_dir=str(tmp_path), max_steps=3, batch_size=8, sample_every=0,
                                                 checkpoint_every=0, num_grid_samples=4))
    calls = []
    original = model.decoder.check_observations
    monkeypatch.setattr(model.decoder, "check_observations",
                        lambda observations, check_values=True: calls.append(check_values) or original(
                            observations, check_values))
    trainer.train()
    assert calls and not any(calls), calls  # every step checked shapes only
