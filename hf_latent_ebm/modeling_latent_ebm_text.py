"""Latent-space EBM prior text model: the image model's prior, sampler and learner with a sequence decoder."""

import warnings
from pathlib import Path

import torch

from .configuration_latent_ebm_text import LatentEBMTextConfig
from .model_kinds import register_model_kind
from .modeling_latent_ebm import LatentEBMOutput, LatentEBMPreTrainedModel
from .tokenization import TokenizerMixin, warn_unknown_words


class LatentEBMForTextGeneration(TokenizerMixin, LatentEBMPreTrainedModel):
    r"""
    Text generator p(x | z) (LSTM, GRU or a small Transformer) with a learned energy-based prior over z, trained by
    the configured learner like the image model (by default maximum likelihood: posterior Langevin on -log p(x, z)
    for the batch, prior Langevin for the energy's negative phase).

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

    sample_file_suffix = ".txt"
    card_num_samples = 8

    def __init__(self, config: LatentEBMTextConfig):
        super().__init__(config)
        self.tokenizer = None

    def expected_tokenizer_ids(self) -> dict:
        return {"vocab_size": self.config.vocab_size, "pad_token_id": self.config.pad_token_id,
                "bos_token_id": self.config.bos_token_id, "eos_token_id": self.config.eos_token_id}

    def set_tokenizer(self, tokenizer) -> None:
        super().set_tokenizer(tokenizer)
        if self.config.unk_token_id not in (None, tokenizer.unk_token_id):  # None: <unk> is not masked
            self.tokenizer = None
            raise ValueError(f"tokenizer does not match the model: config.unk_token_id is {self.config.unk_token_id} "
                             f"(never generated), the tokenizer's unknown token is {tokenizer.unk_token_id}")

    def write_card_samples(self, save_directory) -> Path | None:
        if self.tokenizer is None:  # without one there are no sentences to show
            return None
        return super().write_card_samples(save_directory)

    def sample_lines(self, num_samples: int, generator: torch.Generator | None = None) -> list[str]:
        """What `write_samples` writes, one line per sample: generated sentences, a line break inside one (byte-level
        BPE can generate any character) written as a space."""
        return [" ".join(text.splitlines()) for text in self.generate_text(num_samples, generator)]

    def write_samples(self, path, num_samples: int, generator: torch.Generator | None = None) -> Path | None:
        """`num_samples` samples (`sample_lines`), one per line, to the file `path` or, for path "-", to stdout."""
        texts = self.sample_lines(num_samples, generator)
        if str(path) == "-":
            print("\n".join(texts))
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(texts) + "\n")
        return path

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids (N, <= max_length) with <bos>/<eos>, right-padded. Texts longer than `config.max_length`
        tokens are truncated (their last kept token is <eos>) with a warning; blank texts are an error. Words a
        word-level tokenizer does not know become <unk>, with a warning naming them (byte-level BPE, the default,
        has none)."""
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
                          f"(<bos>/<eos> included; the longest has {max(full_lengths)}) and were truncated: raise the "
                          "config's `max_length` (`hf-latent-ebm train --task text --max-length N`) to keep them",
                          UserWarning, stacklevel=2)
        warn_unknown_words(tokenizer, texts)
        encoded = tokenizer(texts, truncation=True, max_length=self.config.max_length, padding=True,
                            return_tensors="pt")
        return encoded["input_ids"].to(self.device)

    # ---- training --------------------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, generator: torch.Generator | None = None,
                return_dict: bool | None = None, **batch) -> LatentEBMOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, length)`):
                Token ids starting with <bos>, ending with <eos>, right-padded with <pad>.
            generator (`torch.Generator`, *optional*): Source of the chains' randomness.
            return_dict (`bool`, *optional*): Return a `LatentEBMOutput` (default) or a tuple.
        """
        return super().forward(generator, return_dict, input_ids=input_ids, **batch)

    # ---- inference -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def latents_to_ids(self, latents: torch.Tensor, temperature: float = 1.0, greedy: bool = False,
                       max_length: int | None = None, generator: torch.Generator | None = None,
                       suppress_unk: bool = True) -> torch.Tensor:
        """Token ids (N, <= max_length) generated from given latents: <bos> first, <pad> after <eos>; never
        <unk> (`config.unk_token_id`) unless `suppress_unk=False`."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax decoding), got {temperature}")
        max_length = self.config.max_length if max_length is None else max_length
        if not 2 <= max_length <= self.config.max_length:
            raise ValueError(f"max_length must be in [2, {self.config.max_length}], got {max_length}")
        return self.decoder.generate(latents.to(self.device), max_length, temperature, greedy, generator,
                                     suppress_unk=suppress_unk)

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
                     max_length: int | None = None, greedy: bool = False, suppress_unk: bool = True) -> torch.Tensor:
        """
        Token ids of sentences from the model (z by prior Langevin, then the decoder). Metrics that score samples
        should use these rather than re-tokenised `generate_text` output, which need not give the same ids back
        (a BPE tokenizer may split a generated word differently), and `suppress_unk=False` where the text they
        are compared with holds <unk> (a word-level tokenizer's test set): generation never emits <unk> otherwise.
        """
        latents = self.sample_latents(num_samples, generator)
        return self.latents_to_ids(latents, temperature, greedy, max_length, generator, suppress_unk)

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


register_model_kind(LatentEBMForTextGeneration, "text.md.jinja", pipeline_tag="text-generation")

__all__ = ["LatentEBMForTextGeneration"]
