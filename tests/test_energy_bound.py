"""The coupling model's energy stays bounded over many steps: the energy-magnitude penalty gives the class logits,
which are the energy, a finite scale where the labels' cross-entropy has none (docs/semi_supervised.md)."""

import math

import torch

from hf_latent_ebm import LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments


def train_toy(tmp_path, steps=300, **overrides) -> list[dict]:
    """Two Gaussian clusters in 6 dimensions with 8 labels; a high prior learning rate and label weight make the
    logits grow within a few hundred steps when nothing bounds them."""
    generator = torch.Generator().manual_seed(0)
    classes = torch.randint(0, 2, (256,), generator=generator)
    observations = torch.randn(2, 6, generator=generator)[classes] * 2 + torch.randn(256, 6, generator=generator)
    labels = torch.full((256,), -100)
    labels[:8] = classes[:8]
    torch.manual_seed(0)
    config = LatentEBMClassificationConfig(
        decoder_config={"observation_dim": 6, "sigma": 0.5}, encoder_config={"observation_dim": 6}, num_labels=2,
        latent_dim=2, energy_hidden_dim=16, sampler_config={"prior_steps": 10}, prior_learning_rate=1e-2, prior_lr_decay=1.0,
        label_loss_weight=1000.0, mutual_information_weight=100.0, **overrides)
    trainer = LatentEBMTrainer(LatentEBMForSemiSupervisedClassification(config),
                               {"observations": observations, "labels": labels},
                               TrainingArguments(output_dir=str(tmp_path), max_steps=steps, batch_size=32,
                                                 sample_every=0, checkpoint_every=0, log_every=10,
                                                 labelled_batch_size=8))
    trainer.train()
    return trainer.history


def test_the_energy_magnitude_penalty_bounds_the_logits_over_many_steps(tmp_path):
    assert LatentEBMClassificationConfig().part_config("learner").energy_magnitude_weight > 0, \
        "the coupling model's default bounds its energy"
    bounded = train_toy(tmp_path / "bounded")
    unbounded = train_toy(tmp_path / "unbounded", energy_magnitude_weight=0.0)
    spread = lambda history: max(record["logit_spread"] for record in history[len(history) // 2:])
    assert spread(unbounded) > 1.5 * spread(bounded), (spread(unbounded), spread(bounded))
    # Bounded: finite, no growth between the second and the last quarter, and the contrastive gap near zero.
    for record in bounded:
        assert all(math.isfinite(value) for value in record.values()), record
    quarter = len(bounded) // 4
    mean = lambda records, key: sum(record[key] for record in records) / len(records)
    assert mean(bounded[-quarter:], "energy_magnitude") < 1.2 * mean(bounded[quarter:2 * quarter], "energy_magnitude")
    assert max(abs(record["energy_loss"]) for record in bounded[quarter:]) < 5
