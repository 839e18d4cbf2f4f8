"""Configuration of the latent-space EBM prior text model (Pang et al. 2020 text results; Pang et al. 2021 SRI)."""

import copy
from dataclasses import field

from huggingface_hub.dataclasses import strict

from .configuration_latent_ebm import LatentEBMBaseConfig, raise_value_errors

# The SRI text code's decaying posterior step sizes (its last size repeats for further steps): a constant small step
# barely moves the text posterior away from p0 in a short chain, and the decoder then learns to ignore z.
SRI_POSTERIOR_STEP_SIZES = [0.8, 0.7, 0.6, 0.5, 0.2, 0.2, 0.1, 0.1, 0.05]
# The text model's chains where they differ from `LangevinConfig`'s defaults; a given `sampler_config` is merged over
# them field by field.
TEXT_SAMPLER_CONFIG = {"posterior_steps": 10, "posterior_step_schedule": SRI_POSTERIOR_STEP_SIZES,
                       "posterior_noise_scale": 0.05, "prior_step_size": 0.2}
# The text model's default learner settings (SRI's decoder rate; the chain on the reference density).
TEXT_LEARNER_CONFIG = {"posterior_chain_prior": "reference", "prior_learning_rate": 3e-4, "decoder_learning_rate": 1e-3}


@raise_value_errors
@strict
class LatentEBMTextConfig(LatentEBMBaseConfig):
    r"""
    Configuration of [`LatentEBMForTextGeneration`]: the same latent EBM prior, sampler and learner as the image
    model, with an autoregressive decoder p(x | z) over token ids (z initialises the recurrent state and is fed
    with every input token, as in the papers).

    Args:
        vocab_size (`int`, *optional*, defaults to 1000):
            Size of the tokenizer's vocabulary (set from the tokenizer when training).
        pad_token_id (`int`, *optional*, defaults to 0): Id of the padding token (never scored).
        bos_token_id (`int`, *optional*, defaults to 1): Id that starts every sequence.
        eos_token_id (`int`, *optional*, defaults to 2): Id that ends every sequence.
        unk_token_id (`int`, *optional*, defaults to 3): Id of the tokenizer's unknown token, never generated
            (its logit is masked; `generate_ids(..., suppress_unk=False)` samples it); None for a tokenizer without
            one.
        max_length (`int`, *optional*, defaults to 40):
            Longest sequence in tokens, <bos> and <eos> included; longer texts are truncated (and keep <eos>) with
            a warning. `hf-latent-ebm train --task text --max-length N` sets it.
        decoder_type (`str`, *optional*, defaults to `"lstm"`): A registered text decoder: "lstm", "gru" or
            "transformer".
        decoder_config (`dict`, *optional*, defaults to `{}`): The decoder's settings (`RecurrentTextDecoderConfig`
            or `TransformerTextDecoderConfig`): `embedding_dim` 128 (token embedding width; recurrent decoders),
            `hidden_dim` 128 (recurrent state width, or the Transformer's model width), `num_layers` 1, `num_heads`
            4 (the Transformer's), `dropout` 0.5 (on the decoder's inputs and outputs). The vocabulary and token
            fields above are this config's own and given to the decoder. Replaces the former flat `embedding_dim`,
            `hidden_dim`, `num_decoder_layers`, `num_attention_heads` and `decoder_dropout`.
        encoder_type (`str`, *optional*, defaults to `"lstm"`): A registered text encoder.
        encoder_config (`dict`, *optional*, defaults to `{}`): The encoder's settings (`TextEncoderConfig`):
            `embedding_dim` 128, `hidden_dim` 128 (an older config's flat fields set both parts).

    The parts, prior, Langevin, learner and optimisation arguments are those of [`LatentEBMConfig`], with text
    defaults:
    `latent_dim` 32 (as SRI), `decoder_learning_rate` 1e-3 (as SRI), and a 10-step posterior chain on SRI's
    decaying step sizes (`sampler_config` `posterior_step_schedule` [.8, .7, .6, .5, .2, .2, .1, .1, .05]; set it
    to None for the constant `posterior_step_size`) with SRI's tempered noise (`posterior_noise_scale` 0.05), a
    posterior chain on the reference density (`posterior_chain_prior="reference"`), a prior step of 0.2 and
    `prior_learning_rate` 3e-4 (`TEXT_SAMPLER_CONFIG`: a given `sampler_config` is merged over it). Why: with Langevin-proper posterior noise the decoder learns to ignore z;
    tempered, it uses z, but a chain steered by the learned energy then feeds back into the energy until its loss
    runs off; and the aggregate posterior it learns is narrow, which a larger prior step cannot follow (the
    measurements are in docs/text.md). Set `sampler_config={"posterior_noise_scale": 1.0}` and
    `learner_config={"posterior_chain_prior": "model"}` for maximum likelihood proper.

    Example:

    ```python
    >>> from hf_latent_ebm import LatentEBMTextConfig, LatentEBMForTextGeneration
    >>> model = LatentEBMForTextGeneration(LatentEBMTextConfig(vocab_size=500, decoder_type="gru"))
    ```"""

    model_type = "latent_ebm_text"
    part_modality = "text"

    vocab_size: int = 1000
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    unk_token_id: int | None = 3
    max_length: int = 40
    decoder_type: str = "lstm"
    encoder_type: str = "lstm"
    latent_dim: int = 32
    sampler_config: dict = field(default_factory=lambda: copy.deepcopy(TEXT_SAMPLER_CONFIG))
    learner_config: dict = field(default_factory=lambda: copy.deepcopy(TEXT_LEARNER_CONFIG))

    def part_facts(self, kind: str) -> dict:
        if kind == "encoder":
            return {"vocab_size": self.vocab_size, "pad_token_id": self.pad_token_id}
        return {"vocab_size": self.vocab_size, "pad_token_id": self.pad_token_id, "bos_token_id": self.bos_token_id,
                "eos_token_id": self.eos_token_id, "unk_token_id": self.unk_token_id, "max_length": self.max_length}

    def validate_text(self):
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size must be >= 4 (pad, bos, eos, unk), got {self.vocab_size}")
        special = {"pad_token_id": self.pad_token_id, "bos_token_id": self.bos_token_id,
                   "eos_token_id": self.eos_token_id}
        if self.unk_token_id is not None:
            special["unk_token_id"] = self.unk_token_id
        if len(set(special.values())) != len(special) or not all(0 <= i < self.vocab_size
                                                                  for i in special.values()):
            raise ValueError(f"special token ids must be distinct and below vocab_size {self.vocab_size}, got {special}")
        if self.max_length < 3:
            raise ValueError(f"max_length must be >= 3 (<bos>, a token, <eos>), got {self.max_length}")


__all__ = ["LatentEBMTextConfig", "SRI_POSTERIOR_STEP_SIZES", "TEXT_SAMPLER_CONFIG", "TEXT_LEARNER_CONFIG"]
