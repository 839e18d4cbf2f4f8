"""Latent-space EBM prior models (Pang, Han, Nijkamp, Zhu, Wu; NeurIPS 2020) as transformers PreTrainedModels.

One base model composes the parts its config names (prior, decoder, optional encoder, learner) and holds the one
`forward`, sampling, inference and optimiser set-up; the heads add what is particular to a modality: the image
model, the modality-agnostic `LatentEBMModel`, and the text model in `modeling_latent_ebm_text.py`.
"""

import copy
import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_latent_ebm import LatentEBMBaseConfig, LatentEBMConfig, LatentEBMModelConfig
from .decoders import DECODERS
from .encoders import ENCODERS
from .learners import LEARNERS, LearnerContext, posterior_potential
from .model_kinds import register_model_kind
from .modeling_utils import CardedModelMixin, init_pytorch_default
from .priors import PRIORS
from .samplers import SAMPLERS, Sampler, SamplerOutput


@dataclass
class LatentEBMOutput(ModelOutput):
    """
    Args:
        loss (`torch.Tensor`): The learner's loss; its gradient is the update of every part.
        loss_terms (`dict[str, torch.Tensor]`): The learner's named loss terms, detached (for the maximum-likelihood
            learner "decoder_loss" = mean -log p(x | z+) and "energy_loss" = mean E(z+) - mean E(z-); the
            variational learners give "decoder_loss", "kl_loss" and, with an energy-based prior, "energy_loss"); with
            an energy-based prior also the chain diagnostics (`learners.base.CHAIN_DIAGNOSTICS`: "energy_difference"
            and the chains' |grad U| at their last step).
        posterior_latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): z+, the latents the decoder
            learned on (posterior Langevin, or q's samples).
        prior_latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): z-, the prior samples of the update.
        logits (`torch.Tensor` of shape `(batch_size, num_labels)`, *optional*): Class logits, from the learners
            that classify.
    """

    loss: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None
    posterior_latents: torch.Tensor | None = None
    prior_latents: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    @property
    def decoder_loss(self) -> torch.Tensor | None:
        return self.loss_terms.get("decoder_loss")

    @property
    def energy_loss(self) -> torch.Tensor | None:
        return self.loss_terms.get("energy_loss")


class LatentEBMPreTrainedModel(CardedModelMixin, PreTrainedModel):
    """
    What every latent-EBM model is: the prior, decoder, encoder (when the learner asks for one), samplers and
    learner that its config names, the one `forward` (the learner's losses on a dict batch), sampling, posterior
    inference, anomaly scores, the optimiser groups the learner declares, weight init, checkpoint loading errors and
    model cards. Heads set the config class and add modality-specific calls.

    The learner never sees the model: every call hands it `learner_context`, the parts, the samplers and the
    learner's settings, built once (and again only when the config's sampler or learner settings are edited).
    """

    config: LatentEBMBaseConfig
    config_class = LatentEBMBaseConfig
    base_model_prefix = "latent_ebm"
    # The energy is summed with |z|^2 terms along long chains; low precision there biases the samples.
    _keep_in_fp32_modules = ["prior"]
    # What `write_samples` writes, and how many samples a model card shows.
    sample_file_suffix = ".npy"
    card_num_samples = 16
    # Set inside `inputs_checked()`: the caller vouches for the batches' values, so `forward` skips the checks that
    # read them (each a device-to-host synchronisation).
    _inputs_checked = False

    def __init__(self, config: LatentEBMBaseConfig):
        super().__init__(config)
        self.prior = PRIORS.get(config.prior_type).from_config(config.part_config("prior"), config.latent_dim,
                                                                 config.num_labels)
        # Decoder and encoder from their checked settings (`part_arguments`: the sub-config and the facts the
        # config supplies); their own construction is not wrapped, so a bug in it surfaces as itself.
        self.decoder = self.extend_decoder(DECODERS.get(config.decoder_type)(latent_dim=config.latent_dim,
                                                                             **config.part_arguments("decoder")))
        learner_class = LEARNERS.get(config.learner)
        self.encoder = ENCODERS.get(config.encoder_type)(latent_dim=config.latent_dim,
                                                         **config.part_arguments("encoder")) \
            if learner_class.needs_encoder(config.part_config("learner")) else None
        self.learner = learner_class()
        self._learner_context, self._learner_context_key = None, None
        self.post_init()

    def extend_decoder(self, decoder: nn.Module) -> nn.Module:
        """The decoder the model uses, given the one its config names: that one here; a head whose likelihood has
        terms of its own beside it (the molecule head's property regression, `PropertyHeadDecoder`) wraps it."""
        return decoder

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # The paper: Xavier-normal on the generator's convolutions (and here on the image encoder's). Linear,
        # embedding and recurrent layers get PyTorch's own default init, written out with transformers' init
        # functions so loading never re-runs it.
        if isinstance(module, (nn.ConvTranspose2d, nn.Conv2d)):
            init.xavier_normal_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.LSTM, nn.GRU)):
            init_pytorch_default(module)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, 0.0, 1.0)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)

    # ---- model cards (loading, saving and pushing come from `CardedModelMixin`) -------------------------------
    def write_card_samples(self, save_directory) -> Path | None:
        """`card_num_samples` samples (seed 0) for the card, as `samples<suffix>` in the folder, unless it already has
        some (a trainer's). Runs the prior chain and the decoder, so only when asked: `write_card(..,
        with_samples=True)`, `push_to_hub(..., with_samples=True)`."""
        samples = Path(save_directory) / f"samples{self.sample_file_suffix}"
        if not samples.exists():
            was_training = self.training
            self.eval()
            self.write_samples(samples, self.card_num_samples, torch.Generator(device=self.device).manual_seed(0))
            self.train(was_training)
        return samples

    # ---- samplers and the learner's context, built from the config ----------------------------------------------
    @property
    def learner_context(self) -> LearnerContext:
        """What the learner gets instead of the model: the parts, the prior, posterior and proper-posterior samplers
        (`sampler_type`, each built once by its `from_config` from the typed `sampler_config`) and the learner's
        typed `learner_config` (its `config_class`). Cached; rebuilt when a field it was built from has changed since
        (`model.config.x = ...`, `model.config.sampler_config["prior_steps"] = ...`)."""
        # The key is what the context is built from, compared as given: `forward` reads this property every step,
        # so the typed configs are built (and validated) only when something changed.
        config = self.config
        key = (config.sampler_type, config.sampler_config, config.learner, config.learner_config, config.num_labels,
               self.prior, self.decoder, self.encoder)
        if self._learner_context is None or key != self._learner_context_key:
            sampler_class = SAMPLERS.get(config.sampler_type, field="sampler_type")
            sampler_config, settings = config.part_config("sampler"), config.part_config("learner")
            prior_compiles = self.prior.compilable
            posterior_compiles = prior_compiles and self.decoder.compilable
            self._learner_context = LearnerContext(
                prior=self.prior, decoder=self.decoder, encoder=self.encoder,
                prior_sampler=sampler_class.from_config(sampler_config, "prior", prior_compiles),
                posterior_sampler=sampler_class.from_config(sampler_config, "posterior", posterior_compiles),
                proper_posterior_sampler=sampler_class.from_config(sampler_config, "proper_posterior",
                                                                   posterior_compiles),
                settings=settings, num_labels=config.num_labels)
            # Copies: a sub-config dict changed in place must not change the key it is compared with.
            self._learner_context_key = (key[0], copy.deepcopy(key[1]), key[2], copy.deepcopy(key[3]), *key[4:])
        return self._learner_context

    def prior_sampler(self, num_steps: int | None = None, step_size: float | None = None) -> Sampler:
        """The configured prior chain (its step-size schedule, if any); an explicit `step_size` replaces both."""
        sampler = self.learner_context.prior_sampler
        return sampler if num_steps is None and step_size is None else sampler.with_chain(num_steps, step_size)

    def posterior_sampler(self, num_steps: int | None = None, step_size: float | None = None,
                          langevin_proper: bool = False) -> Sampler:
        """The configured posterior chain (its step-size schedule, if any); an explicit `step_size` replaces both.
        `langevin_proper=True` keeps the steps but uses full noise, whatever the posterior noise scale is."""
        sampler = self.learner_context.posterior_chain(langevin_proper)
        return sampler if num_steps is None and step_size is None else sampler.with_chain(num_steps, step_size)

    # ---- learning --------------------------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        """The batch keys `forward` reads: the decoder's observations and whatever else the learner uses."""
        return tuple(self.decoder.input_names) + tuple(self.learner.input_names)

    def forward(self, generator: torch.Generator | None = None, return_dict: bool | None = None,
                **batch) -> LatentEBMOutput | tuple:
        r"""
        The learner's losses on a dict batch (the keys in `input_names`; others are ignored). The batch is checked
        as `check_batch` checks it (ranges, NaN, label ids: the same messages as `anomaly_score` and the other
        public calls), except inside `inputs_checked()`, where only type, dtype and shape are: the trainer checks its
        whole dataset once when loading it, so its steps need not read values (a GPU synchronisation each).

        Args:
            generator (`torch.Generator`, *optional*): Source of the chains' randomness.
            return_dict (`bool`, *optional*): Return a `LatentEBMOutput` (default) or a tuple.
            **batch: The observations under the decoder's input names (e.g. `pixel_values`, `input_ids`).
        """
        observations = self.decoder.select(batch)
        if self._inputs_checked:
            self.decoder.check_observations(observations, check_values=False)
        else:
            self.check_batch(batch)
        if self.training and torch.is_grad_enabled():
            self.prior.on_training_step()
        losses = self.learner.losses(self.learner_context, self.decoder.compact(observations), batch, generator)
        if losses.sampler_updates:  # settings the learner tuned (a step size): the config carries them from now on
            self.config.sampler_config = {**self.config.sampler_config, **losses.sampler_updates}
        terms = {name: term.detach() for name, term in losses.terms.items()}
        output = LatentEBMOutput(loss=losses.loss, loss_terms=terms, posterior_latents=losses.posterior_latents,
                                 prior_latents=losses.prior_latents, logits=losses.logits)
        return output if return_dict is not False else output.to_tuple()

    def build_optimizer(self) -> torch.optim.Adam:
        """Adam over the learner's parameter groups (each with its learning rate) and the config's betas; pass it to
        `Trainer(optimizers=(optimizer, model.build_lr_scheduler(optimizer)))`. On CUDA the update is the fused
        kernel (one launch for every parameter instead of a few per tensor)."""
        return torch.optim.Adam(self.learner.parameter_groups(self.learner_context),
                                betas=(self.config.adam_beta1, self.config.adam_beta2), fused=self.device.type == "cuda")

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """Step-wise exponential decay per group, lr * lr_decay ** (step // lr_decay_steps), as the paper's decay
        per epoch."""
        every = self.config.lr_decay_steps
        lambdas = [(lambda step, decay=group["lr_decay"]: decay ** (step // every)) for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)

    def check_inputs(self, observations) -> None:
        """Raise a ValueError saying what was expected unless `observations` is a batch the decoder scores (values
        included: ranges, finiteness, token ids)."""
        self.decoder.check_observations(observations)

    @contextlib.contextmanager
    def inputs_checked(self):
        """Within it, `forward` trusts that its batches' values were checked (as `check_batch` does): for training
        loops that check their data once up front, as `LatentEBMTrainer` does."""
        previous, self._inputs_checked = self._inputs_checked, True
        try:
            yield self
        finally:
            self._inputs_checked = previous

    def check_batch(self, batch: dict) -> None:
        """`check_inputs` on a dict batch's observations, and the learner's checks of its other inputs (labels)."""
        self.check_inputs(self.decoder.select(batch))
        self.learner.check_batch(self.learner_context, batch)

    # ---- latents ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(self, batch_size: int, generator: torch.Generator | None = None, num_steps: int | None = None,
                       step_size: float | None = None,
                       return_diagnostics: bool = False) -> torch.Tensor | SamplerOutput:
        """z ~ p(z): the prior samples itself (short-run prior Langevin from p0 with the config's steps and step
        size unless given; exact draws for the Gaussian prior)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return self.prior.sample(batch_size, self.prior_sampler(num_steps, step_size), generator, self.device,
                                 return_diagnostics)

    @torch.no_grad()
    def resample_layer(self, latents: torch.Tensor, layer: int, generator: torch.Generator | None = None,
                       num_steps: int | None = None) -> torch.Tensor:
        """`latents` with one layer (1 = next to x) redrawn given the others by the prior chain, for a prior with
        layers (prior_type "hierarchical"): decode before and after to see what the layer controls."""
        if not hasattr(self.prior, "resample_layer"):
            raise ValueError(f"resample_layer needs a prior with layers (prior_type 'hierarchical'), not "
                             f"{self.config.prior_type!r}")
        return self.prior.resample_layer(latents.to(self.device), layer, self.prior_sampler(num_steps), generator)

    @torch.no_grad()
    def posterior_latents(self, observations, generator: torch.Generator | None = None,
                          langevin_proper: bool = False) -> torch.Tensor:
        """z ~ p(z | x) as the learner infers it: short-run posterior Langevin (the configured chain, or with
        `langevin_proper=True` one on the model's own p(z | x), full noise and the learned energy, whatever the
        training chain was), or a draw of the variational learners' q(z | x)."""
        return self.learner.infer_latents(self.learner_context, observations, generator, langevin_proper)

    @torch.no_grad()
    def posterior_gaussian(self, observations, num_chains: int = 8, generator: torch.Generator | None = None,
                           langevin_proper: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """
        A diagonal Gaussian (mean, std) approximating p(z | x) per example: q(z | x) for the variational learners,
        or the mean and std of `num_chains` posterior chains. Active units use the configured chains (the inference
        the model was trained with); the importance-sampling proposal uses `langevin_proper=True`, since tempered
        chains on p0 are narrower than p(z | x) and loosen the NLL bound.
        """
        return self.learner.posterior_gaussian(self.learner_context, observations, num_chains, generator,
                                               langevin_proper)

    def posterior_chain_potential(self, observations, langevin_proper: bool = False):
        """The posterior chain's potential U(z) for these observations, with the configured prior term (the model's
        own with `langevin_proper=True`)."""
        return self.learner_context.posterior_potential(observations, langevin_proper)

    @torch.no_grad()
    def joint_potential(self, observations, latents: torch.Tensor) -> torch.Tensor:
        """-log p(x, z) up to constants, one value per example."""
        return posterior_potential(self.prior, self.decoder, observations)(latents)

    # ---- observations ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        """Observations from latents of shape (N, latent_dim): images g(z), sampled token ids, ..."""
        if latents.dim() != 2 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(f"latents must have shape (N, {self.config.latent_dim}), got {tuple(latents.shape)}")
        return self.decoder.decode(latents.to(self.device, torch.float32), generator)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None):
        """batch_size observations from the model: z from the prior, then the decoder."""
        return self.decode(self.sample_latents(batch_size, generator), generator)

    @torch.no_grad()
    def infer_latents(self, observations, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z | x) for a checked batch (see `posterior_latents`)."""
        self.check_inputs(observations)
        return self.posterior_latents(observations, generator)

    @torch.no_grad()
    def reconstruct(self, observations, generator: torch.Generator | None = None):
        """The decoder's output at posterior samples z+ of each example."""
        return self.decode(self.infer_latents(observations, generator), generator)

    @torch.no_grad()
    def anomaly_score(self, observations, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""
        One score per example, higher = more anomalous: -log p(x, z+) up to constants at a posterior sample z+ (for
        images |x - g(z+)|^2 / (2 decoder_sigma^2) + E(z+) + |z+|^2 / (2 prior_sigma^2)).

        This is the unnormalised joint density at a posterior sample that Pang et al. 2020 (Table 3) use as a
        proxy for -log p(x); it omits log Z of the prior and the likelihood's normalisers, which are the same for
        every example, so it ranks examples but is not a calibrated likelihood.
        """
        return self.joint_potential(observations, self.infer_latents(observations, generator))

    def write_samples(self, path, num_samples: int, generator: torch.Generator | None = None) -> Path:
        """Write `num_samples` samples to `path` (here a .npy array; heads write images or text)."""
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, self.sample(num_samples, generator).cpu().numpy(), allow_pickle=False)
        return path


class LatentEBMForImageGeneration(LatentEBMPreTrainedModel):
    r"""
    Image generator x = g(z) + N(0, decoder_sigma^2) with a learned energy-based prior over z.

    `model(pixel_values=x)` runs one update of the configured learner and returns its loss (use
    `model.build_optimizer()` for the parts' learning rates); `sample`, `reconstruct` and `anomaly_score` use the
    trained model.

    Args:
        config (`LatentEBMConfig`): Model configuration.
    """

    config: LatentEBMConfig
    config_class = LatentEBMConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    sample_file_suffix = ".png"

    def forward(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None,
                return_dict: bool | None = None, **batch) -> LatentEBMOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch_size, num_channels, image_size, image_size)`):
                Float images in [-1, 1].
            generator (`torch.Generator`, *optional*): Source of the chains' randomness.
            return_dict (`bool`, *optional*): Return a `LatentEBMOutput` (default) or a tuple.
        """
        return super().forward(generator, return_dict, pixel_values=pixel_values, **batch)

    def write_samples(self, path, num_samples: int, generator: torch.Generator | None = None) -> Path:
        """A grid of `num_samples` samples as an image file; for a prior with layers, a row of samples and under it
        one row per layer, the top first, with that layer redrawn given the others (what each layer controls)."""
        from .utils import image_grid

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not hasattr(self.prior, "layer_sweep"):
            image_grid(self.sample(num_samples, generator)).save(path)
            return path
        rows = self.prior.layer_sweep(self.sample_latents(num_samples, generator), self.prior_sampler(), generator)
        image_grid(self.decode(rows.flatten(0, 1), generator), num_columns=num_samples).save(path)
        return path


class LatentEBMModel(LatentEBMPreTrainedModel):
    r"""
    The latent-EBM model over any registered decoder configured by `decoder_config` (real vectors with the default
    Gaussian MLP decoder; your own observations with a decoder you register). `model(observations=x)` (or the
    decoder's own input names) runs one learner update; `sample`, `reconstruct`, `anomaly_score` and
    `infer_latents` work as for images. With the HF `Trainer`, pass `remove_unused_columns=False` in its arguments:
    this `forward` takes its inputs by the decoder's names, which the `Trainer` cannot read off its signature.

    Args:
        config (`LatentEBMModelConfig`): Model configuration.
    """

    config: LatentEBMModelConfig
    config_class = LatentEBMModelConfig
    main_input_name = "observations"


register_model_kind(LatentEBMForImageGeneration, "image.md.jinja", pipeline_tag="unconditional-image-generation")
register_model_kind(LatentEBMModel, "model.md.jinja")

__all__ = ["LatentEBMOutput", "LatentEBMPreTrainedModel", "LatentEBMForImageGeneration", "LatentEBMModel"]
