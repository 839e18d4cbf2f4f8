"""Latent-space EBM prior image model (Pang, Han, Nijkamp, Zhu, Wu; NeurIPS 2020) as a transformers PreTrainedModel."""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_latent_ebm import LatentEBMBaseConfig, LatentEBMConfig
from .decoders import ConvImageDecoder
from .langevin import LangevinOutput, LangevinSampler
from .learning import (MLELosses, build_lr_scheduler, build_optimizer, mle_losses, posterior_potential,
                       run_prior_chain)
from .priors import EnergyPrior, GaussianPrior


@dataclass
class LatentEBMOutput(ModelOutput):
    """
    Args:
        loss (`torch.Tensor`): decoder_loss + energy_loss; its gradient is the MLE gradient of both parts.
        decoder_loss (`torch.Tensor`): Mean -log p(x | z+) (up to the Gaussian normaliser).
        energy_loss (`torch.Tensor`): mean E(z+) - mean E(z-).
        posterior_latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): z+ from posterior Langevin.
        prior_latents (`torch.Tensor` of shape `(batch_size, latent_dim)`): z- from prior Langevin.
    """

    loss: torch.Tensor | None = None
    decoder_loss: torch.Tensor | None = None
    energy_loss: torch.Tensor | None = None
    posterior_latents: torch.Tensor | None = None
    prior_latents: torch.Tensor | None = None


class LatentEBMPreTrainedModel(PreTrainedModel):
    """
    What every latent-EBM model shares: the prior built from the config, the two Langevin samplers configured from
    it, the two-group optimizer, the learner, prior and posterior sampling, and weight init. Subclasses add a
    decoder (`self.decoder`, with `negative_log_likelihood(observations, latents)`) and their own forward.
    """

    config: LatentEBMBaseConfig
    config_class = LatentEBMBaseConfig
    base_model_prefix = "latent_ebm"
    # The energy is summed with |z|^2 terms along long chains; low precision there biases the samples.
    _keep_in_fp32_modules = ["prior"]

    @staticmethod
    def build_prior(config: LatentEBMBaseConfig) -> nn.Module:
        if config.prior_type == "gaussian":
            return GaussianPrior(latent_dim=config.latent_dim, reference_sigma=config.prior_sigma)
        return EnergyPrior(
            latent_dim=config.latent_dim,
            hidden_dim=config.energy_hidden_dim,
            num_hidden_layers=config.energy_num_hidden_layers,
            activation=config.energy_activation,
            reference_sigma=config.prior_sigma,
            analytic_gradient=config.prior_gradient == "analytic",
        )

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        # The paper: Xavier-normal on the generator's convolutions. Linear, embedding and recurrent layers get
        # PyTorch's own default init, written out with transformers' init functions so loading never re-runs it.
        if isinstance(module, nn.ConvTranspose2d):
            init.xavier_normal_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1 / module.in_features**0.5
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, 0.0, 1.0)
        elif isinstance(module, (nn.LSTM, nn.GRU)):
            bound = 1 / module.hidden_size**0.5
            for param in module.parameters():
                init.uniform_(param, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except OSError:
            raise
        except Exception as error:  # safetensors/json errors on a damaged file: say which checkpoint and why.
            raise OSError(f"could not load a {cls.__name__} checkpoint from {pretrained_model_name_or_path!r}: "
                          f"{type(error).__name__}: {error}") from error

    def save_pretrained(self, save_directory, *args, write_card: bool = True, **kwargs):
        """`PreTrainedModel.save_pretrained`, then a model card (README.md) rendered from the saved folder, with
        samples (seed 0) for it unless the folder already has some."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if write_card:
            self.write_card_with_samples(save_directory)

    def write_card_with_samples(self, save_directory) -> None:
        from pathlib import Path

        from .hub import write_model_card

        was_training = self.training
        self.eval()
        self.write_card_samples(Path(save_directory), torch.Generator(device=self.device).manual_seed(0))
        self.train(was_training)
        write_model_card(save_directory)

    def write_card_samples(self, folder, generator: torch.Generator) -> None:
        """Write what the model card shows (a sample grid, sample sentences); subclasses say what."""

    def push_to_hub(self, repo_id: str, *, private: bool = False, commit_message: str | None = None,
                    token: str | None = None, api=None):
        """Save to a temporary folder (weights, config, card, tokenizer) and upload it with `HfApi.upload_folder`."""
        import tempfile

        from .hub import push_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            return push_folder(folder, repo_id, private=private, commit_message=commit_message, token=token, api=api)

    # ---- samplers, configured from the config --------------------------------------------------------------
    def prior_sampler(self, num_steps: int | None = None, step_size: float | None = None) -> LangevinSampler:
        """The configured prior chain (its step-size schedule, if any); an explicit `step_size` replaces both."""
        if step_size is None:
            step_size = self.config.prior_langevin_step_schedule or self.config.prior_langevin_step_size
        return LangevinSampler(
            num_steps=self.config.prior_langevin_steps if num_steps is None else num_steps,
            step_size=step_size,
            add_noise=self.config.langevin_noise,
            on_nonfinite=self.config.langevin_on_nonfinite,
        )

    def posterior_sampler(self, num_steps: int | None = None, step_size: float | None = None,
                          langevin_proper: bool = False) -> LangevinSampler:
        """The configured posterior chain (its step-size schedule, if any); an explicit `step_size` replaces both.
        `langevin_proper=True` keeps the steps but uses full noise, whatever `posterior_langevin_noise_scale` says."""
        config = self.config
        if step_size is None:
            step_size = config.posterior_langevin_step_schedule or config.posterior_langevin_step_size
        return LangevinSampler(
            num_steps=config.posterior_langevin_steps if num_steps is None else num_steps,
            step_size=step_size,
            add_noise=config.langevin_noise,
            on_nonfinite=config.langevin_on_nonfinite,
            noise_scale=1.0 if langevin_proper else config.posterior_langevin_noise_scale,
        )

    # ---- learning --------------------------------------------------------------------------------------------
    def build_optimizer(self) -> torch.optim.Adam:
        """Adam with the prior and decoder parameter groups; pass it to `Trainer(optimizers=(opt, scheduler))`."""
        return build_optimizer(self)

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return build_lr_scheduler(optimizer, self.config)

    def mle_losses(self, observations: torch.Tensor, generator: torch.Generator | None = None) -> MLELosses:
        """The shared learner on this model's prior and decoder (see `hf_latent_ebm.learning.mle_losses`)."""
        return mle_losses(self.prior, self.decoder, observations, self.prior_sampler(), self.posterior_sampler(),
                          generator, self.config.posterior_chain_prior)

    # ---- latents ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_latents(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
        step_size: float | None = None,
        return_diagnostics: bool = False,
    ) -> torch.Tensor | LangevinOutput:
        """z ~ p(z) by short-run prior Langevin from p0 (the config's steps and step size unless given); exact draws
        for the Gaussian prior."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        start = self.prior.sample_reference(batch_size, generator, self.device)
        if self.prior.exact_sampling:  # the Gaussian prior: its reference draws are exact samples
            return LangevinOutput(start, start.new_zeros(0), start.new_zeros(0)) if return_diagnostics else start
        return run_prior_chain(self.prior, self.prior_sampler(num_steps, step_size), start, generator,
                               return_diagnostics)

    @torch.no_grad()
    def posterior_latents(self, observations: torch.Tensor, generator: torch.Generator | None = None,
                          langevin_proper: bool = False) -> torch.Tensor:
        """z ~ p(z | x) by short-run posterior Langevin from p0, for a batch the decoder can score: the configured
        chain, or with `langevin_proper=True` a chain that targets this model's p(z | x) itself (full noise, the
        learned energy in the prior term) whatever the training chain was."""
        start = self.prior.sample_reference(observations.shape[0], generator, self.device)
        return self.posterior_sampler(langevin_proper=langevin_proper)(
            self.posterior_chain_potential(observations, langevin_proper), start, generator)

    def posterior_chain_potential(self, observations: torch.Tensor, langevin_proper: bool = False):
        """The posterior chain's potential U(z) for these observations, with the configured prior term (the model's
        own with `langevin_proper=True`)."""
        chain_prior = "model" if langevin_proper else self.config.posterior_chain_prior
        return posterior_potential(self.prior, self.decoder, observations, chain_prior)

    @torch.no_grad()
    def joint_potential(self, observations: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """-log p(x, z) up to constants, one value per example."""
        return posterior_potential(self.prior, self.decoder, observations)(latents)


class LatentEBMForImageGeneration(LatentEBMPreTrainedModel):
    r"""
    Image generator x = g(z) + N(0, decoder_sigma^2) with a learned energy-based prior over z.

    `model(pixel_values=x)` runs one MLE update's chains and returns the loss that trains both parts (use
    `model.build_optimizer()` for the two learning rates); `sample`, `reconstruct` and `anomaly_score` use the
    trained model.

    Args:
        config (`LatentEBMConfig`): Model configuration.
    """

    config: LatentEBMConfig
    config_class = LatentEBMConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: LatentEBMConfig):
        super().__init__(config)
        self.prior = self.build_prior(config)
        self.decoder = ConvImageDecoder(
            latent_dim=config.latent_dim,
            image_size=config.image_size,
            num_channels=config.num_channels,
            base_channels=config.decoder_base_channels,
            sigma=config.decoder_sigma,
        )
        self.post_init()


    # ---- training --------------------------------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
    ) -> LatentEBMOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.Tensor` of shape `(batch_size, num_channels, image_size, image_size)`):
                Float images in [-1, 1].
            generator (`torch.Generator`, *optional*): Source of the chains' randomness.
            return_dict (`bool`, *optional*): Return a `LatentEBMOutput` (default) or a tuple.
        """
        self.check_pixel_values(pixel_values)
        losses = self.mle_losses(pixel_values, generator)
        output = LatentEBMOutput(
            loss=losses.loss,
            decoder_loss=losses.decoder_loss.detach(),
            energy_loss=losses.energy_loss.detach(),
            posterior_latents=losses.posterior_latents,
            prior_latents=losses.prior_latents,
        )
        return output if return_dict is not False else output.to_tuple()

    def write_card_samples(self, folder, generator: torch.Generator) -> None:
        if not (folder / "samples.png").exists():
            from .utils import image_grid

            image_grid(self.sample(16, generator), num_columns=8).save(folder / "samples.png")

    # ---- inference -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """g(z): images in [-1, 1] of shape (N, C, H, W)."""
        if latents.dim() != 2 or latents.shape[1] != self.config.latent_dim:
            raise ValueError(f"latents must have shape (N, {self.config.latent_dim}), got {tuple(latents.shape)}")
        return self.decoder(latents.to(self.device, torch.float32))

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] of shape (batch_size, C, H, W): prior Langevin, then the generator."""
        return self.decode(self.sample_latents(batch_size, generator))

    @torch.no_grad()
    def infer_latents(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z | x) by short-run posterior Langevin from p0."""
        self.check_pixel_values(pixel_values)
        return self.posterior_latents(pixel_values, generator)

    @torch.no_grad()
    def reconstruct(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """g(z+) for posterior samples z+ of each image; same shape as the input."""
        return self.decode(self.infer_latents(pixel_values, generator))

    @torch.no_grad()
    def anomaly_score(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""
        One score per image, higher = more anomalous: -log p(x, z+) up to constants, i.e.
        |x - g(z+)|^2 / (2 decoder_sigma^2) + E(z+) + |z+|^2 / (2 prior_sigma^2) at a posterior Langevin sample z+.

        This is the unnormalised joint density at a posterior sample that Pang et al. 2020 (Table 3) use as a
        proxy for -log p(x); it omits log Z of the prior and the Gaussian normalisers, which are the same for
        every image, so it ranks images but is not a calibrated likelihood.
        """
        return self.joint_potential(pixel_values, self.infer_latents(pixel_values, generator))

    def check_inputs(self, pixel_values) -> None:
        self.check_pixel_values(pixel_values)

    def check_pixel_values(self, pixel_values) -> None:
        """Raise a ValueError naming what was expected unless pixel_values is a finite float batch in [-1, 1]."""
        expected = (self.config.num_channels, self.config.image_size, self.config.image_size)
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be a float tensor scaled to [-1, 1], got dtype {pixel_values.dtype}")
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), "
                             f"got {tuple(pixel_values.shape)}")
        if pixel_values.shape[0] == 0:
            raise ValueError("pixel_values is an empty batch")
        if not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contains NaN or inf")
        low, high = pixel_values.min().item(), pixel_values.max().item()
        if low < -1 - 1e-4 or high > 1 + 1e-4:
            raise ValueError(f"pixel_values must lie in [-1, 1], got values in [{low:.3f}, {high:.3f}] "
                             "(scale uint8 images with x / 127.5 - 1)")


__all__ = ["LatentEBMOutput", "LatentEBMPreTrainedModel", "LatentEBMForImageGeneration"]
