"""Semi-supervised learners for the symbol-vector coupling prior (Pang, Nijkamp, Cui, Han & Wu 2020; Pang & Wu 2021):
labelled and unlabelled examples in one batch, labels -100 where missing."""

from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict
import torch.nn.functional as F

from .base import LearnerContext, LearnerOutput
from .mle import MLELearner, MLELearnerConfig
from .variational import VariationalEBMLearner, VariationalLearnerConfig

# The label id of rows without a label (the loss ignores them, as `ignore_index` does); the data loaders mark
# unlabelled rows with it.
UNLABELLED = -100


def _check_coupling_config(learner: str, prior_type: str, num_labels: int | None) -> None:
    from ..priors import PRIORS, CouplingPrior

    if not issubclass(PRIORS.get(prior_type, field="prior_type"), CouplingPrior):
        raise ValueError(f"learner={learner!r} couples labels with z: it needs a coupling prior "
                         f"(prior_type='coupling'), not {prior_type!r}")
    if num_labels is None or num_labels < 2:
        raise ValueError(f"semi-supervised classification needs >= 2 labels, got num_labels={num_labels}")


def check_labels(labels: torch.Tensor, num_labels: int) -> None:
    """Label ids must be class ids in [0, num_labels) or -100 (unlabelled)."""
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.dim() != 1:
        raise ValueError(f"labels must be a 1-d torch.long tensor, got {getattr(labels, 'dtype', type(labels))}")
    bad = labels[(labels != UNLABELLED) & ((labels < 0) | (labels >= num_labels))]
    if len(bad):
        raise ValueError(f"labels must lie in [0, {num_labels}) or be -100 for unlabelled, got {bad[:5].tolist()}")


def _label_terms(logits: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the labelled rows, their accuracy, the labelled fraction); zeros without labels."""
    if labels is None:
        zero = logits.new_zeros(())
        return zero, zero, zero
    labelled = labels != UNLABELLED
    count = labelled.sum().clamp_min(1)
    losses = F.cross_entropy(logits, labels.clamp_min(0), reduction="none")
    cross_entropy = (losses * labelled).sum() / count
    accuracy = ((logits.argmax(dim=1) == labels) & labelled).sum() / count
    return cross_entropy, accuracy.detach(), labelled.float().mean()


def _validate_label_weights(config) -> None:
    for name in ("label_loss_weight", "mutual_information_weight"):
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")


@strict
@dataclass
class CouplingVariationalConfig(VariationalLearnerConfig):
    """The variational learner settings plus the label terms' weights (the paper's lambda_lab and `ibebm`'s
    lambda_MI)."""

    label_loss_weight: float = 100.0
    mutual_information_weight: float = 10.0

    def validate_label_weights(self):
        _validate_label_weights(self)


@strict
@dataclass
class CouplingMLEConfig(MLELearnerConfig):
    """The MLE learner settings plus the label terms' weights (`mutual_information_weight` is kept for a config
    that switches between the coupling learners; only the variational one reads it)."""

    label_loss_weight: float = 100.0
    mutual_information_weight: float = 10.0

    def validate_label_weights(self):
        _validate_label_weights(self)


# The former name of the coupling learners' settings.
CouplingSettings = CouplingVariationalConfig


class _LabelsMixin:
    """What both coupling learners add to the learner they build on: labels as an input, the coupling prior."""

    input_names = ("labels",)

    @classmethod
    def check_config(cls, learner: str, prior_type: str, num_labels: int | None) -> None:
        _check_coupling_config(learner, prior_type, num_labels)
        super().check_config(learner, prior_type, num_labels)

    def check_batch(self, context: LearnerContext, batch: dict) -> None:
        if batch.get("labels") is not None:
            check_labels(batch["labels"], context.num_labels)


class CouplingVariationalLearner(_LabelsMixin, VariationalEBMLearner):
    r"""
    The paper's variational scheme: the variational latent EBM (`VariationalEBMLearner`: the ELBO with an inference
    network, the prior learned on q's samples through its marginal) plus, for labelled rows, the cross-entropy of
    the prior's classifier at the encoder mean, `label_loss_weight` * CE(f(mu(x)), y), which trains encoder and
    energy; and the mutual-information term of `ibebm`, -`mutual_information_weight` * MI(y; z) with
    MI = H(E_q p(y | z)) - E_q H(p(y | z)) over the batch, which makes the latent classes confident and used.
    Terms: the variational ones, "label_loss", "mutual_information" and "label_accuracy" (on the batch's labelled
    rows). Classification uses softmax f(mu(x)).
    """

    config_class = CouplingVariationalConfig

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        output, mean, latents = self.elbo_losses(context, observations, generator)
        config = context.settings
        output.logits = context.prior.logits(mean)
        label_loss, accuracy, _ = _label_terms(output.logits, batch.get("labels"))
        probabilities = F.softmax(context.prior.logits(latents), dim=1)
        marginal = probabilities.mean(dim=0)
        mutual_information = (-(marginal * marginal.clamp_min(1e-12).log()).sum()
                              + (probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1).mean())
        output.loss = (output.loss + config.label_loss_weight * label_loss
                       - config.mutual_information_weight * mutual_information)
        # How far apart the classes' logits are: the cross-entropy alone rewards pushing them apart without end.
        logit_spread = (output.logits.max(dim=1).values - output.logits.min(dim=1).values).mean().detach()
        output.terms.update(label_loss=label_loss, mutual_information=mutual_information, label_accuracy=accuracy,
                            logit_spread=logit_spread)
        return output

    def class_logits(self, context: LearnerContext, observations,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        return context.prior.logits(context.encoder(observations)[0])


class CouplingMLELearner(_LabelsMixin, MLELearner):
    r"""
    Maximum likelihood with Langevin inference on the coupled prior: the MLE learner's posterior and prior chains on
    the marginal p(z), with the joint likelihood of (x, y) for labelled rows, whose energy term adds
    -log p(y | z+) = CE(f(z+), y) to the marginal's; `label_loss_weight` weights the same cross-entropy once more
    as a discriminative term. Classification uses softmax f(z+) at a posterior chain's end.
    """

    config_class = CouplingMLEConfig

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        output = super().losses(context, observations, batch, generator)
        output.logits = context.prior.logits(output.posterior_latents)
        label_loss, accuracy, labelled_fraction = _label_terms(output.logits, batch.get("labels"))
        # The joint term's batch mean is CE summed over labelled rows / batch size = labelled fraction * mean CE.
        output.loss = output.loss + (labelled_fraction + context.settings.label_loss_weight) * label_loss
        output.terms.update(label_loss=label_loss, label_accuracy=accuracy)
        return output

    def class_logits(self, context: LearnerContext, observations,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        return context.prior.logits(self.infer_latents(context, observations, generator))


__all__ = ["CouplingSettings", "CouplingVariationalConfig", "CouplingMLEConfig", "CouplingVariationalLearner",
           "CouplingMLELearner", "check_labels", "UNLABELLED"]
