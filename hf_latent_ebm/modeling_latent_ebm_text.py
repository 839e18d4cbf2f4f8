"""Latent-space EBM prior text model: the image model's prior, sampler and learner with a sequence decoder."""

import warnings

import torch

from .configuration_latent_ebm_text import VARIATIONAL_LEARNERS, LatentEBMTextConfig
from .decoders.text import RecurrentTextDecoder, TransformerTextDecoder
from .encoders import TextEncoder
from .learning import elbo_losses
from .modeling_latent_ebm import LatentEBMOutput, LatentEBMPreTrainedModel


def _gaussian_nll(latents: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """-log N(latents; mean, exp(log_variance)) up to a constant, summed over dimensions."""
    return 0.5 * ((latents - mean).pow(2) / log_variance.exp() + log_variance).sum(dim=-1)


class LatentEBMForTextGeneration(LatentEBMPreTrainedModel):
    r"""
    Text generator p(x | z) (LSTM, GRU or a small Transformer) with a learned energy-based prior over z, trained by
    the same MLE learner as the image model: posterior Langevin on -log p(x, z) for the batch, prior Langevin for
    the energy's negative phase.

    The tokenizer travels with the model: `set_tokenizer(tokenizer)` attaches it (checking that its vocabulary
    matches the config), `save_pretrained` writes it beside the weights, and `from_pretrained` loads it back when
    the folder has one; text-level methods (`generate_text`, `encode_text`, `interpolate`) need it.

    Args:
        config (`LatentEBMTextConfig`): Model configuration.
    """

    config: LatentEBMTextConfig
    config_class = LatentEBMTextConfig
    main_input_name = "input_ids"
    input_modalities = ("text",)

    def __init__(self, config: LatentEBMTextConfig):
        super().__init__(config)
        self.prior = self.build_prior(config)
        special_ids = dict(pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id,
                           eos_token_id=config.eos_token_id)
        if config.decoder_type == "transformer":
            self.decoder = TransformerTextDecoder(
                vocab_size=config.vocab_size, latent_dim=config.latent_dim, hidden_dim=config.hidden_dim,
                num_layers=config.num_decoder_layers, num_heads=config.num_attention_heads,
                max_length=config.max_length, dropout=config.decoder_dropout, **special_ids)
        else:
            self.decoder = RecurrentTextDecoder(
                vocab_size=config.vocab_size, latent_dim=config.latent_dim, embedding_dim=config.embedding_dim,
                hidden_dim=config.hidden_dim, num_layers=config.num_decoder_layers, cell=config.decoder_type,
                dropout=config.decoder_dropout, **special_ids)
        self.encoder = TextEncoder(vocab_size=config.vocab_size, latent_dim=config.latent_dim,
                                   embedding_dim=config.embedding_dim, hidden_dim=config.hidden_dim,
                                   pad_token_id=config.pad_token_id) \
            if config.learner in VARIATIONAL_LEARNERS or config.posterior_init == "encoder" else None
        self.tokenizer = None
        self.post_init()

    # ---- tokenizer -------------------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer) -> None:
        """Attach a tokenizer after checking that its vocabulary and special ids are the model's."""
        expected = {"vocab_size": self.config.vocab_size, "pad_token_id": self.config.pad_token_id,
                    "bos_token_id": self.config.bos_token_id, "eos_token_id": self.config.eos_token_id}
        found = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                 "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
        if found != expected:
            raise ValueError(f"tokenizer does not match the model: model expects {expected}, tokenizer has {found}")
        self.tokenizer = tokenizer

    def save_pretrained(self, save_directory, *args, write_card: bool = True, **kwargs):
        super().save_pretrained(save_directory, *args, write_card=False, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        if write_card:
            self.write_card_with_samples(save_directory)

    def write_card_samples(self, folder, generator: torch.Generator) -> None:
        if self.tokenizer is not None and not (folder / "samples.txt").exists():
            (folder / "samples.txt").write_text("\n".join(self.generate_text(8, generator)) + "\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        from transformers import AutoTokenizer

        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs}
        try:  # a local folder or a Hub repo (cached or online) saved with its tokenizer
            tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        except (OSError, ValueError):
            return model  # saved without a tokenizer: text methods will ask for one
        model.set_tokenizer(tokenizer)
        return model

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("this method works on text and needs a tokenizer: call model.set_tokenizer(tokenizer) "
                             "or load a folder saved with one")
        return self.tokenizer

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids (N, <= max_length) with <bos>/<eos>, right-padded. Texts longer than `config.max_length`
        tokens are truncated (their last kept token is <eos>) with a warning; blank texts are an error."""
        tokenizer = self._require_tokenizer()
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise ValueError("texts must be a list of strings")
        texts = list(texts)
        if not texts or any(not text.strip() for text in texts):
            raise ValueError("texts must be a non-empty list of non-blank strings")
        full_lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        num_truncated = sum(length > self.config.max_length for length in full_lengths)
        if num_truncated:
            warnings.warn(f"{num_truncated} of {len(texts)} texts exceed max_length={self.config.max_length} tokens "
                          "and were truncated", UserWarning, stacklevel=2)
        encoded = tokenizer(texts, truncation=True, max_length=self.config.max_length, padding=True,
                            return_tensors="pt")
        return encoded["input_ids"].to(self.device)

    def check_inputs(self, input_ids) -> None:
        self.check_input_ids(input_ids)

    def check_input_ids(self, input_ids) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long or input_ids.dim() != 2:
            raise ValueError("input_ids must be a (batch, length) torch.long tensor, got "
                             f"{getattr(input_ids, 'dtype', type(input_ids).__name__)} "
                             f"{tuple(getattr(input_ids, 'shape', ()))}")
        if input_ids.shape[0] == 0 or input_ids.shape[1] < 2:
            raise ValueError(f"input_ids needs at least one sequence of >= 2 tokens, got {tuple(input_ids.shape)}")
        if input_ids.shape[1] > self.config.max_length:
            raise ValueError(f"input_ids has {input_ids.shape[1]} positions, more than max_length "
                             f"{self.config.max_length}; truncate when tokenizing")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}), got [{low}, {high}]: "
                             "was this batch made by another tokenizer?")

    # ---- training --------------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, generator: torch.Generator | None = None,
                return_dict: bool | None = None) -> LatentEBMOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, length)`):
                Token ids starting with <bos>, ending with <eos>, right-padded with <pad>.
            generator (`torch.Generator`, *optional*): Source of the chains' randomness.
            return_dict (`bool`, *optional*): Return a `LatentEBMOutput` (default) or a tuple.
        """
        self.check_input_ids(input_ids)
        # Columns that are padding in every row change no score; dropping them saves recurrent steps.
        length = int((input_ids != self.config.pad_token_id).any(dim=0).nonzero().max()) + 1
        input_ids = input_ids[:, :length]
        if self.config.learner in VARIATIONAL_LEARNERS:
            losses = elbo_losses(self.encoder, self.prior, self.decoder, input_ids, generator,
                                 self.config.vae_free_bits, self.prior_sampler())
        elif self.encoder is not None:
            # The learner's chains start from p0 as in the papers; q(z | x) learns to predict where they end, so
            # that inference can start its chains from q instead.
            losses = self.mle_losses(input_ids, generator)
            losses.loss = losses.loss + _gaussian_nll(losses.posterior_latents, *self.encoder(input_ids)).mean()
        else:
            losses = self.mle_losses(input_ids, generator)
        output = LatentEBMOutput(loss=losses.loss, decoder_loss=losses.decoder_loss.detach(),
                                 energy_loss=losses.energy_loss.detach(), posterior_latents=losses.posterior_latents,
                                 prior_latents=losses.prior_latents)
        return output if return_dict is not False else output.to_tuple()

    # ---- posterior ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def posterior_latents(self, input_ids: torch.Tensor, generator: torch.Generator | None = None,
                          langevin_proper: bool = False) -> torch.Tensor:
        """z ~ p(z | x): short-run posterior Langevin (from p0, or from a draw of q(z | x) with
        posterior_init="encoder"), or a draw from q(z | x) for the variational learners. The chain is the configured one, or with
        `langevin_proper=True` one that targets this model's p(z | x) (full noise, the learned energy in its prior
        term) whatever the training chain was."""
        if self.encoder is None:
            return super().posterior_latents(input_ids, generator, langevin_proper)
        sample = self._sample_gaussian(*self.encoder(input_ids), generator)
        if self.config.learner in VARIATIONAL_LEARNERS:
            return sample
        return self.posterior_sampler(langevin_proper=langevin_proper)(
            self.posterior_chain_potential(input_ids, langevin_proper), sample, generator)

    @staticmethod
    def _sample_gaussian(mean, log_variance, generator):
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + (0.5 * log_variance).exp() * noise

    @torch.no_grad()
    def posterior_gaussian(self, input_ids: torch.Tensor, num_chains: int = 8,
                           generator: torch.Generator | None = None,
                           langevin_proper: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """
        A diagonal Gaussian (mean, std) approximating p(z | x) for each sequence: the encoder's q(z | x) for the
        variational learners, or, for the Langevin models, the mean and std of `num_chains` independent posterior
        chains (std floored at 0.05 so the Gaussian covers the chains' spread when they agree). Active units use the configured chains (the inference
        the model was trained with); the importance-sampling proposal uses `langevin_proper=True`, chains on the
        model's own p(z | x), since tempered chains on p0 are narrower than p(z | x) and loosen the NLL bound.
        """
        if self.config.learner in VARIATIONAL_LEARNERS:
            mean, log_variance = self.encoder(input_ids)
            return mean, (0.5 * log_variance).exp()
        if num_chains < 2:
            raise ValueError(f"num_chains must be >= 2 to fit a Gaussian, got {num_chains}")
        chains = torch.stack([self.posterior_latents(input_ids, generator, langevin_proper) for _ in range(num_chains)])
        return chains.mean(dim=0), chains.std(dim=0).clamp_min(0.05)

    # ---- inference -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def latents_to_ids(self, latents: torch.Tensor, temperature: float = 1.0, greedy: bool = False,
                       max_length: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Token ids (N, <= max_length) generated from given latents: <bos> first, <pad> after <eos>."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax decoding), got {temperature}")
        max_length = self.config.max_length if max_length is None else max_length
        if not 2 <= max_length <= self.config.max_length:
            raise ValueError(f"max_length must be in [2, {self.config.max_length}], got {max_length}")
        return self.decoder.generate(latents.to(self.device), max_length, temperature, greedy, generator)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, temperature: float = 1.0, greedy: bool = False,
                       max_length: int | None = None, generator: torch.Generator | None = None) -> list[str]:
        """Texts generated from given latents."""
        self._require_tokenizer()
        return self.ids_to_text(self.latents_to_ids(latents, temperature, greedy, max_length, generator))

    def ids_to_text(self, ids: torch.Tensor) -> list[str]:
        """
        Texts of token-id rows without <bos>, <eos> and <pad> but with <unk> shown: dropping it, as
        `skip_special_tokens=True` would, makes generated text look more fluent than the model is.
        """
        tokenizer = self._require_tokenizer()
        hidden = {self.config.pad_token_id, self.config.bos_token_id, self.config.eos_token_id}
        return [tokenizer.decode([i for i in row.tolist() if i not in hidden]) for row in ids]

    @torch.no_grad()
    def generate_ids(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
                     max_length: int | None = None, greedy: bool = False) -> torch.Tensor:
        """
        Token ids of sentences from the model (z by prior Langevin, then the decoder). Metrics that score samples
        should use these rather than re-tokenised `generate_text` output, which need not give the same ids back
        (a BPE tokenizer may split a generated word differently).
        """
        latents = self.sample_latents(num_samples, generator)
        return self.latents_to_ids(latents, temperature, greedy, max_length, generator)

    @torch.no_grad()
    def generate_text(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
                      max_length: int | None = None, greedy: bool = False) -> list[str]:
        """Sentences from the model: z by prior Langevin, then the decoder, sampling each token at `temperature`."""
        self._require_tokenizer()
        return self.ids_to_text(self.generate_ids(num_samples, generator, temperature, max_length, greedy))

    @torch.no_grad()
    def encode_text(self, texts: list[str], generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior latents z ~ p(z | x) (short-run Langevin), one row per text."""
        return self.posterior_latents(self.tokenize(texts), generator)

    @torch.no_grad()
    def interpolate(self, text_a: str, text_b: str, num_steps: int = 5,
                    generator: torch.Generator | None = None) -> list[str]:
        """Greedy decodings along the straight line between the posterior latents of two texts."""
        if num_steps < 2:
            raise ValueError(f"num_steps must be >= 2, got {num_steps}")
        start, end = self.encode_text([text_a, text_b], generator)
        weights = torch.linspace(0, 1, num_steps, device=self.device)[:, None]
        return self.decode_latents((1 - weights) * start + weights * end, greedy=True)


__all__ = ["LatentEBMForTextGeneration"]
