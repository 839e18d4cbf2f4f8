"""The learner interface: one update's losses on a batch, the parameter groups it trains, and inference of z."""

from dataclasses import dataclass

from huggingface_hub.dataclasses import strict

import torch
from torch import nn

from ..decoders.base import decoder_negative_log_likelihood
from ..registry import PartConfig
from ..samplers.base import Sampler
from ..validation import require_at_least, require_greater_than


POSTERIOR_CHAIN_PRIORS = ("model", "reference")
DECODER_AUTOCAST_DTYPES = ("bfloat16",)


@strict
@dataclass
class LearnerConfig(PartConfig):
    """
    The settings every learner reads: the model config's `learner_config` dict, read by the learner's
    `config_class` (this class or a subclass that adds the learner's own fields) when the model builds its
    `LearnerContext`. Defaults equal the former flat fields' (`convert_legacy_config` moves those here).

    Args:
        posterior_chain_prior (`str`): The prior term of the posterior chain's potential ("model" or "reference").
        decoder_autocast (`str`, *optional*): Autocast dtype of the decoder ("bfloat16"), or None.
        energy_magnitude_weight (`float`): Weight of the energy-magnitude penalty.
        prior_learning_rate, prior_lr_decay, prior_weight_decay (`float`): The prior's optimizer group.
        decoder_learning_rate, decoder_lr_decay (`float`): The decoder's (and the encoder's) optimizer group.
    """

    posterior_chain_prior: str = "model"
    decoder_autocast: str | None = None
    energy_magnitude_weight: float = 0.0
    prior_learning_rate: float = 2e-4
    prior_lr_decay: float = 0.998
    prior_weight_decay: float = 0.0
    decoder_learning_rate: float = 5e-4
    decoder_lr_decay: float = 0.998

    def validate_learner(self):
        if self.posterior_chain_prior not in POSTERIOR_CHAIN_PRIORS:
            raise ValueError(f"posterior_chain_prior must be one of {POSTERIOR_CHAIN_PRIORS}, "
                             f"got {self.posterior_chain_prior!r}")
        if self.decoder_autocast is not None and self.decoder_autocast not in DECODER_AUTOCAST_DTYPES:
            raise ValueError(f"decoder_autocast must be None or one of {DECODER_AUTOCAST_DTYPES}, "
                             f"got {self.decoder_autocast!r}")
        require_greater_than(self, ("prior_learning_rate", "decoder_learning_rate"))
        require_at_least(self, ("prior_weight_decay", "energy_magnitude_weight"), 0)
        for name in ("prior_lr_decay", "decoder_lr_decay"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")


# The former name of the learner's settings (a frozen dataclass read from flat config fields).
LearnerSettings = LearnerConfig


@dataclass(frozen=True)
class LearnerContext:
    """
    Everything a learner works with, built by the model from its parts and config and handed to every learner call:
    data flows one way, and a learner never sees the model or its config.

    Args:
        prior (`Prior`): The prior p(z).
        decoder (`Decoder`): The decoder p(x | z).
        encoder (`Encoder`, *optional*): The inference network q(z | x), where the learner asked for one.
        prior_sampler (`Sampler`): The prior chain.
        posterior_sampler (`Sampler`): The configured posterior chain (training and inference).
        proper_posterior_sampler (`Sampler`): The posterior chain that targets the model's own p(z | x) (full
            noise), for `langevin_proper=True`.
        settings (`LearnerConfig`): The learner's typed config (its `config_class`, from `learner_config`).
        num_labels (`int`, *optional*): The model's number of classes, for learners that read labels.
    """

    prior: nn.Module
    decoder: nn.Module
    encoder: nn.Module | None
    prior_sampler: Sampler
    posterior_sampler: Sampler
    proper_posterior_sampler: Sampler
    settings: LearnerConfig
    num_labels: int | None = None

    def posterior_potential(self, observations, langevin_proper: bool = False):
        """The posterior chain's potential U(z) for these observations, with the configured prior term (the model's
        own with `langevin_proper=True`)."""
        chain_prior = "model" if langevin_proper else self.settings.posterior_chain_prior
        return posterior_potential(self.prior, self.decoder, observations, chain_prior,
                                   self.settings.decoder_autocast)

    def posterior_chain(self, langevin_proper: bool = False) -> Sampler:
        """The configured posterior sampler, or with `langevin_proper=True` the one on p(z | x) proper."""
        return self.proper_posterior_sampler if langevin_proper else self.posterior_sampler


@dataclass
class LearnerOutput:
    """
    Args:
        loss (`torch.Tensor`): The scalar to back-propagate; its gradient is the learner's update direction.
        terms (`dict[str, torch.Tensor]`): Named parts of the loss, for logging and plots (e.g. "decoder_loss",
            "energy_loss", "kl_loss"). They need not sum to `loss` (free bits floor a term in the loss only).
        posterior_latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): The latents the decoder learned on.
        prior_latents (`torch.Tensor` of shape `(batch_size, latent_dim)`, *optional*): The negative-phase
            prior samples, where the learner draws some.
        logits (`torch.Tensor` of shape `(batch_size, num_labels)`, *optional*): Class logits, for learners that
            classify.
        sampler_updates (`dict`, *optional*): Sampler settings the learner tuned in this update (e.g.
            {"posterior_step_size": 0.08}); the model writes them into its config's `sampler_config`, so later
            updates, inference and a saved model use them.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    posterior_latents: torch.Tensor
    prior_latents: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    sampler_updates: dict | None = None

    # The two terms of the maximum-likelihood learner by their old attribute names.
    @property
    def decoder_loss(self) -> torch.Tensor:
        return self.terms["decoder_loss"]

    @property
    def energy_loss(self) -> torch.Tensor:
        return self.terms["energy_loss"]


def posterior_potential(prior, decoder, observations, chain_prior: str = "model", decoder_autocast: str | None = None):
    """U(z) = -log p(x, z) up to constants: the potential of the posterior chain and the anomaly score. With
    chain_prior="reference" the prior term is p0's alone (see `posterior_chain_prior` in the config); with
    `decoder_autocast` ("bfloat16") the decoder's term runs under autocast, the prior's in float32."""
    prior_term = prior.potential if chain_prior == "model" else prior.reference_potential
    return lambda latents: (decoder_negative_log_likelihood(decoder, observations, latents, decoder_autocast)
                            + prior_term(latents))


# The chain diagnostics of Nijkamp et al. 2020 ("On the anatomy of MCMC-based maximum likelihood learning of EBMs"),
# which every learner with an energy-based prior adds to its terms (detached) and the trainer plots apart from the
# losses: the energy difference mean E(z+) - mean E(z-) between posterior and prior samples, E at each where the
# learner logs them, and |grad U| at the last step of the posterior and prior chains that ran.
CHAIN_DIAGNOSTICS = ("energy_difference", "posterior_energy", "prior_energy", "posterior_chain_grad_norm",
                     "prior_chain_grad_norm")


def chain_diagnostics(posterior_energy: torch.Tensor, prior_energy: torch.Tensor, posterior_chain=None,
                      prior_chain=None) -> dict[str, torch.Tensor]:
    """The terms "energy_difference" (from the batch means E(z+) and E(z-)) and, for each chain given (a
    `LangevinOutput` with `return_diagnostics="last"`) that ran any step, "<posterior|prior>_chain_grad_norm": the
    mean over chains of |grad U(z)| before the last step. All detached device tensors (logging reads them, not the
    step)."""
    terms = {"energy_difference": (posterior_energy - prior_energy).detach()}
    for name, chain in (("posterior_chain_grad_norm", posterior_chain), ("prior_chain_grad_norm", prior_chain)):
        if chain is not None and len(chain.grad_norms):
            terms[name] = chain.grad_norms[-1].detach()
    return terms


def add_energy_magnitude_penalty(output: "LearnerOutput", prior, weight: float) -> None:
    """Add weight * (mean E(z+)^2 + mean E(z-)^2) to the loss, as the term "energy_magnitude" (Du & Mordatch 2019):
    a bound on the energy's scale. The contrastive term is blind to it, and a term that rewards a larger scale (a
    classifier's cross-entropy on separable labels, say) otherwise steepens the energy until the fixed-step prior
    chain overshoots its wells and the energy loss runs off (docs/semi_supervised.md)."""
    if weight == 0 or not prior.has_energy or output.prior_latents is None:
        return
    magnitude = (prior.energy_magnitude(output.posterior_latents).mean()
                 + prior.energy_magnitude(output.prior_latents).mean())
    output.loss = output.loss + weight * magnitude
    output.terms["energy_magnitude"] = magnitude.detach()


class Learner:
    r"""
    How a model learns and infers z. A learner holds no weights (a schedule's training-time state at most, as the
    multi-stage NCE learner's stages, never saved): every call gets the `LearnerContext`
    the model built (its parts, its samplers, and the learner's typed config, its `config_class` read from the
    model config's `learner_config`), never the model, so data flows one way and a model is its config plus its
    weights. Subclasses implement `losses` and `infer_latents`; they may declare the batch keys they read beside
    the decoder's (`input_names`, e.g. labels), check the config (`check_config`, run by the config's validation),
    ask for an inference network (`needs_encoder`, from the typed learner config), read more settings (a
    `config_class` subclass) and change the parameter groups.
    """

    input_names: tuple[str, ...] = ()
    config_class: type[LearnerConfig] = LearnerConfig
    # Whether z is inferred by an inference network, so `posterior_gaussian` is q(z | x) itself rather than a Monte
    # Carlo estimate from chains (whose noise metrics such as active units must subtract).
    infers_with_encoder: bool = False

    @classmethod
    def check_config(cls, learner: str, prior_type: str, num_labels: int | None) -> None:
        """Raise a ValueError when the model's other choices (the prior named `prior_type`, the number of classes)
        do not fit this learner (registered as `learner`, for the message); the config runs it when it is built."""

    @classmethod
    def needs_encoder(cls, learner_config: LearnerConfig) -> bool:
        """Whether the model builds an inference network for this learner (given its typed config)."""
        return False

    def check_batch(self, context: LearnerContext, batch: dict) -> None:
        """Raise a ValueError for bad values of the inputs the learner reads beside the decoder's (labels, say)."""

    def losses(self, context: LearnerContext, observations, batch: dict,
               generator: torch.Generator | None = None) -> LearnerOutput:
        """The update's losses on the decoder's `observations` (and, for learners that read more, the whole
        `batch`)."""
        raise NotImplementedError

    def infer_latents(self, context: LearnerContext, observations, generator: torch.Generator | None = None,
                      langevin_proper: bool = False) -> torch.Tensor:
        """z ~ p(z | x) as this learner infers it (a posterior chain, or the inference network)."""
        raise NotImplementedError

    def posterior_gaussian(self, context: LearnerContext, observations, num_chains: int = 8,
                           generator: torch.Generator | None = None,
                           langevin_proper: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of a diagonal Gaussian approximating p(z | x) per example: here, of `num_chains` independent
        inferences, std floored at 0.05 so the Gaussian covers the chains' spread when they agree."""
        if num_chains < 2:
            raise ValueError(f"num_chains must be >= 2 to fit a Gaussian, got {num_chains}")
        chains = torch.stack([self.infer_latents(context, observations, generator, langevin_proper)
                              for _ in range(num_chains)])
        return chains.mean(dim=0), chains.std(dim=0).clamp_min(0.05)

    def parameter_groups(self, context: LearnerContext) -> list[dict]:
        """Optimizer groups (name, params, lr, lr_decay, and for the prior weight_decay): the prior at the prior's
        learning rate, decay and weight decay, the decoder and any inference network at the decoder's; groups
        without parameters are left out."""
        settings = context.settings
        groups = [
            {"name": "prior", "params": list(context.prior.parameters()), "lr": settings.prior_learning_rate,
             "lr_decay": settings.prior_lr_decay, "weight_decay": settings.prior_weight_decay},
            {"name": "decoder", "params": list(context.decoder.parameters()), "lr": settings.decoder_learning_rate,
             "lr_decay": settings.decoder_lr_decay},
        ]
        if context.encoder is not None:
            groups.append({"name": "encoder", "params": list(context.encoder.parameters()),
                           "lr": settings.decoder_learning_rate, "lr_decay": settings.decoder_lr_decay})
        return [group for group in groups if group["params"]]


__all__ = ["Learner", "LearnerOutput", "LearnerContext", "LearnerConfig", "LearnerSettings", "posterior_potential",
           "add_energy_magnitude_penalty", "CHAIN_DIAGNOSTICS", "chain_diagnostics"]
