"""The adaptive multi-stage density-ratio (NCE) learner of Xiao & Han 2022 (arXiv 2209.08739): the energy-based prior
learns by logistic classification of posterior against prior samples, in stages, with no MCMC on the energy it
learns."""

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict

from ..decoders.base import decoder_negative_log_likelihood
from ..decoders.multimodal import batch_size_of
from ..validation import require_at_least
from .base import LearnerConfig, LearnerContext, LearnerOutput, add_energy_magnitude_penalty, chain_diagnostics
from .mle import MLELearner

# Rows of the negative bank drawn per prior-chain call: bounds the chain's memory, whatever the bank's size.
BANK_CHUNK_SIZE = 2048


def nce_losses(energy, snapshot_energy, positives: torch.Tensor, negatives: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""
    The NCE objective of one stage: a logistic classifier with logit h(z) telling `positives` (z+, samples of the
    aggregate posterior q) from `negatives` (z-, samples of the stage's noise density p_{k-1}). With
    `snapshot_energy` None (stage 0, noise p0) h(z) = -E(z); otherwise h(z) = E_snapshot(z) - E(z). At the optimum h
    is log q / p_{k-1} up to a constant (the energy's last bias absorbs it), so exp(-E) p0 is q.

    Returns "nce_loss" = mean softplus(-h(z+)) + mean softplus(h(z-)) (each class weighted alike, so the
    classifier's prior odds are even whatever the two batch sizes), "nce_accuracy" (detached: the share of rows on
    their class's side of h = 0, a tie counting half), and mean E(z+), mean E(z-) ("posterior_energy",
    "prior_energy", for the chain diagnostics).
    """
    positive_energy, negative_energy = energy(positives), energy(negatives)
    positive_logit, negative_logit = -positive_energy, -negative_energy
    if snapshot_energy is not None:
        with torch.no_grad():  # p_{k-1} is fixed during its stage
            positive_offset, negative_offset = snapshot_energy(positives), snapshot_energy(negatives)
        positive_logit, negative_logit = positive_logit + positive_offset, negative_logit + negative_offset
    loss = F.softplus(-positive_logit).mean() + F.softplus(negative_logit).mean()
    # A tie (h = 0, as at a stage's first update, where E is its snapshot) counts half: the classifier is at chance.
    accuracy = 0.5 * (1 + torch.cat([positive_logit.sign(), -negative_logit.sign()])).mean()
    return {"nce_loss": loss, "nce_accuracy": accuracy.detach(), "posterior_energy": positive_energy.mean(),
            "prior_energy": negative_energy.mean()}


@strict
@dataclass
class MultiStageNCEConfig(LearnerConfig):
    """The learner settings plus the stage schedule: `num_stages` stages (1 is single-stage NCE against p0), each
    `stage_updates` updates long (the last runs to the end), and a bank of `negative_bank_size` prior samples drawn
    once per stage from stage 1 on."""

    num_stages: int = 4
    stage_updates: int = 1000
    negative_bank_size: int = 10000

    def validate_stages(self):
        require_at_least(self, ("num_stages", "stage_updates", "negative_bank_size"))


class MultiStageNCELearner(MLELearner):
    r"""
    Adaptive multi-stage density-ratio estimation (Xiao & Han 2022). z+ comes from the configured posterior chain,
    as in the MLE learner, and the decoder learns on it ("decoder_loss"); the prior learns by `nce_losses`. Stage 0
    tells z+ from exact draws of p0, so it needs no chain; stage k >= 1 freezes a copy of the prior as p_{k-1},
    draws a bank of `negative_bank_size` samples of it once with the prior chain, and learns the ratio
    r_k = q / p_{k-1} as E_snapshot - E, so that the prior becomes p0 * r_1 * ... * r_k. One far-apart ratio
    (q against p0) is hard to classify well; each stage's is closer to 1. The prior chain runs only when a bank is
    drawn, never in an update. Inference is the MLE learner's posterior chain.

    Unlike the other learners this one keeps training-time state (the update count, the stage, its snapshot and
    bank), on the instance, which a model makes once. An update counts only with gradients on and the prior in
    training mode. The state is not saved with the model (the saved prior is the trained energy alone): a resumed
    run restarts the schedule, its first stage then re-estimating the ratio against p0 in one go.
    """

    config_class = MultiStageNCEConfig

    def __init__(self):
        self.num_updates, self.stage = 0, 0
        self.snapshot, self.negative_bank = None, None

    @classmethod
    def check_config(cls, learner: str, prior_type: str, num_labels: int | None) -> None:
        from ..priors import PRIORS  # the registry imports every prior; only one class's flag is needed

        if not PRIORS.get(prior_type, field="prior_type").has_energy:
            raise ValueError(f"learner={learner!r} learns an energy-based prior by density-ratio estimation: "
                             f"prior_type={prior_type!r} has no energy")

    @classmethod
    def needs_encoder(cls, learner_config: LearnerConfig) -> bool:
        return False

    def advance(self, context: LearnerContext, generator: torch.Generator | None = None) -> None:
        """Count one update and, at a stage's first update, freeze p_{k-1} and draw its negative bank."""
        settings = context.settings
        stage = min(self.num_updates // settings.stage_updates, settings.num_stages - 1)
        self.num_updates += 1
        if stage == self.stage:  # stage 0 has no snapshot; a later stage got its own when it began
            return
        self.stage = stage
        prior = context.prior
        self.snapshot = copy.deepcopy(prior).requires_grad_(False).eval()
        with torch.no_grad():
            chunks = [prior.sample(min(BANK_CHUNK_SIZE, settings.negative_bank_size - start), context.prior_sampler,
                                   generator)
                      for start in range(0, settings.negative_bank_size, BANK_CHUNK_SIZE)]
        self.negative_bank = torch.cat(chunks).detach()

    def negatives(self, context: LearnerContext, batch_size: int, generator: torch.Generator | None = None):
        """The stage's noise samples: exact draws of p0 at stage 0, later random rows of the bank."""
        if self.stage == 0:
            return context.prior.sample_reference(batch_size, generator)
        bank = self.negative_bank
        rows = torch.randint(len(bank), (batch_size,), generator=generator, device=bank.device)
        return bank[rows]

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        prior, settings = context.prior, context.settings
        if torch.is_grad_enabled() and prior.training:
            self.advance(context, generator)
        batch_size = batch_size_of(observations)
        # z+ exactly as the MLE learner draws it: the configured posterior chain from where the prior says.
        chain = context.posterior_sampler(context.posterior_potential(observations),
                                          prior.posterior_start(batch_size, generator), generator,
                                          return_diagnostics="last")
        positives = chain.latents.detach()
        negatives = self.negatives(context, batch_size, generator).detach()
        decoder_loss = decoder_negative_log_likelihood(context.decoder, observations, positives,
                                                       settings.decoder_autocast).mean()
        nce = nce_losses(prior.energy, self.snapshot.energy if self.stage > 0 else None, positives, negatives)
        terms = {"decoder_loss": decoder_loss, "nce_loss": nce["nce_loss"], "nce_accuracy": nce["nce_accuracy"],
                 "stage": torch.tensor(float(self.stage), device=positives.device),
                 **chain_diagnostics(nce["posterior_energy"], nce["prior_energy"], posterior_chain=chain)}
        output = LearnerOutput(loss=decoder_loss + nce["nce_loss"], terms=terms, posterior_latents=positives,
                               prior_latents=negatives)
        add_energy_magnitude_penalty(output, prior, settings.energy_magnitude_weight)
        return output


__all__ = ["MultiStageNCEConfig", "MultiStageNCELearner", "nce_losses"]
