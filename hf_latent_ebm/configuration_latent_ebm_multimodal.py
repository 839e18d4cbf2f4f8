"""Configuration of the multimodal latent-EBM model: one shared latent, one decoder and one encoder per modality."""

from dataclasses import field

from huggingface_hub.dataclasses import strict

from .configuration_latent_ebm import LatentEBMBaseConfig, raise_value_errors
from .decoders import DECODERS
from .decoders.multimodal import MODALITY_MASK
from .encoders import AGGREGATIONS, ENCODERS

MODALITY_KINDS = ("image", "text")
RESERVED_NAMES = (MODALITY_MASK, "label", "labels")
CROSS_MODAL_SAMPLING = ("posterior", "encoder")
SPEC_KEYS = ("kind", "decoder_type", "decoder_kwargs", "encoder_type", "encoder_kwargs")
# Optional (a spec saved before it existed means 1): w_m, see `LatentEBMForMultimodalGeneration.conditional_latents`.
OPTIONAL_SPEC_KEYS = ("conditioning_weight",)
TEXT_CONDITIONING_WEIGHT = 30.0


def image_modality(image_size: int = 28, num_channels: int = 3, base_channels: int = 16,
                   sigma: float = 0.3, conditioning_weight: float = 1.0) -> dict:
    """The spec of an image modality: the DCGAN generator of the image model and its mirrored conv encoder.
    `conditioning_weight` weighs its likelihood when it is given in cross-modal generation (1: the model's own
    posterior)."""
    shape = dict(image_size=image_size, num_channels=num_channels, base_channels=base_channels)
    return {"kind": "image", "decoder_type": "conv", "decoder_kwargs": {**shape, "sigma": sigma},
            "encoder_type": "conv", "encoder_kwargs": shape, "conditioning_weight": conditioning_weight}


def text_modality(tokenizer, max_length: int = 16, embedding_dim: int = 64, hidden_dim: int = 128,
                  cell: str = "gru", conditioning_weight: float = TEXT_CONDITIONING_WEIGHT) -> dict:
    """The spec of a text modality over `tokenizer`'s vocabulary: the text model's recurrent decoder (one layer)
    and its LSTM encoder. `max_length` counts <bos> and <eos>; longer texts are an error, not truncated (the CLI
    sets it with `--max-length`). The tokenizer's unknown token, if it has one, is never generated.
    `conditioning_weight` weighs the text's likelihood when it is given in cross-modal generation: a caption of a
    few tokens separates the classes by a few nats only, so at weight 1 the images drawn for it stray into other
    classes (docs/multimodal.md has the measurements behind the default)."""
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    return {"kind": "text", "decoder_type": cell,
            "decoder_kwargs": dict(vocab_size=len(tokenizer), embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                                   num_layers=1, cell=cell, dropout=0.0, max_length=max_length,
                                   unk_token_id=tokenizer.unk_token_id, **ids),
            "encoder_type": "lstm",
            "encoder_kwargs": dict(vocab_size=len(tokenizer), embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                                   pad_token_id=ids["pad_token_id"]),
            "conditioning_weight": conditioning_weight}


def _polymnist_modalities() -> dict:
    return {f"m{index}": image_modality() for index in range(5)}


@raise_value_errors
@strict
class LatentEBMMultimodalConfig(LatentEBMBaseConfig):
    r"""
    Configuration of [`LatentEBMForMultimodalGeneration`]: one latent z shared by several modalities, the
    energy-based prior over it (or the Gaussian baseline), one registered decoder and one registered encoder per
    modality, and an aggregation of the encoders' experts. Every prior, sampler, learner and optimiser setting of
    [`LatentEBMConfig`] applies.

    Args:
        modalities (`dict`, *optional*, defaults to five 3x28x28 image modalities "m0".."m4", PolyMNIST's):
            Modality name -> spec: `kind` ("image" or "text"), `decoder_type` / `decoder_kwargs` (a registered
            decoder and its constructor's arguments besides latent_dim), `encoder_type` / `encoder_kwargs`, and
            optionally `conditioning_weight` (w_m > 0, the weight of its likelihood when it is given in cross-modal
            generation; 1 when absent). Build
            specs with `image_modality(...)` and `text_modality(tokenizer, ...)`. The order is the order of
            `modality_mask`'s columns.
        aggregation (`str`, *optional*, defaults to `"moe"`):
            How the per-modality experts form q(z | x_S): "moe" (mixture of experts, MMVAE), "poe" (product of
            experts, MVAE) or "mopoe" (mixture of products over all subsets, MoPoE-VAE). See `ExpertsEncoder`.
        learner (`str`, *optional*, defaults to `"vae_ebm"`):
            "vae_ebm" (the ELBO with the energy-based prior learned on q's samples, Yuan et al. ECCV 2024), "vae"
            (the Gaussian-prior baselines: with prior_type="gaussian"), or "mle_encoder" (maximum likelihood with
            posterior Langevin over the present modalities started from q's draws, Yuan, Lipizzi & Han 2024).
        latent_dim (`int`, *optional*, defaults to 32): Dimension of the shared z.
        cross_modal_sampling (`str`, *optional*, defaults to `"posterior"`):
            How cross-modal generation draws z given some modalities x_S: "posterior" (short-run Langevin with full
            noise on the model's own p(z | x_S), the prior times the given modalities' likelihoods (each to the power
            of its spec's `conditioning_weight`), started from
            q's draws: the MCMC inference of Yuan, Lipizzi & Han 2024) or "encoder" (q(z | x_S)'s draw alone, as
            MMVAE and MoPoE-VAE generate). q learned by the ELBO is several times narrower than the region of
            latents that explain a caption, and decodes to one class average per caption; docs/multimodal.md has
            the measurements.
        cross_modal_langevin_steps (`int`, *optional*, defaults to 200):
            Steps of the "posterior" chain.
        cross_modal_langevin_step_size (`float`, *optional*, defaults to 0.1):
            Its step size s (z moves by -s^2/2 grad U + s noise).
    """

    model_type = "latent_ebm_multimodal"
    part_modality = "multimodal"

    decoder_type: str = "multimodal"
    encoder_type: str = "experts"
    learner: str = "vae_ebm"
    latent_dim: int = 32
    modalities: dict = field(default_factory=_polymnist_modalities)
    modality_order: list[str] | None = None
    aggregation: str = "moe"
    cross_modal_sampling: str = "posterior"
    cross_modal_langevin_steps: int = 200
    cross_modal_langevin_step_size: float = 0.1

    def validate_modalities(self):
        if not isinstance(self.modalities, dict) or not self.modalities:
            raise ValueError("modalities must be a non-empty dict of name -> spec")
        for name, spec in self.modalities.items():
            if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_NAMES:
                raise ValueError(f"modality names must be identifiers other than {RESERVED_NAMES}, got {name!r}")
            if not isinstance(spec, dict) or not set(SPEC_KEYS) <= set(spec) <= set(SPEC_KEYS + OPTIONAL_SPEC_KEYS):
                raise ValueError(f"modality {name!r} needs a spec with the keys {SPEC_KEYS} and optionally "
                                 f"{OPTIONAL_SPEC_KEYS} (see "
                                 f"image_modality / text_modality), got {spec!r}")
            if spec["kind"] not in MODALITY_KINDS:
                raise ValueError(f"modality {name!r}: kind must be one of {MODALITY_KINDS}, got {spec['kind']!r}")
            DECODERS.get(spec["decoder_type"])
            ENCODERS.get(spec["encoder_type"])
            weight = spec.get("conditioning_weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise ValueError(f"modality {name!r}: conditioning_weight must be a number > 0, got {weight!r}")
        # config.json is written with sorted keys, so the order (of modality_mask's columns, of the parts) is kept
        # in a list of its own, filled from the dict's order when not given.
        if self.modality_order is None:
            self.modality_order = list(self.modalities)
        elif sorted(self.modality_order) != sorted(self.modalities):
            raise ValueError(f"modality_order {self.modality_order} must list the modalities {list(self.modalities)}")
        self.modalities = {name: self.modalities[name] for name in self.modality_order}
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")

    def validate_cross_modal_sampling(self):
        if self.cross_modal_sampling not in CROSS_MODAL_SAMPLING:
            raise ValueError(f"cross_modal_sampling must be one of {CROSS_MODAL_SAMPLING}, got "
                             f"{self.cross_modal_sampling!r}")
        if not (isinstance(self.cross_modal_langevin_steps, int) and self.cross_modal_langevin_steps >= 1):
            raise ValueError(f"cross_modal_langevin_steps must be an int >= 1, got {self.cross_modal_langevin_steps!r}")
        if not self.cross_modal_langevin_step_size > 0:
            raise ValueError(f"cross_modal_langevin_step_size must be > 0, got {self.cross_modal_langevin_step_size!r}")

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(self.modality_order)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: spec["kind"] for name, spec in self.modalities.items()}

    @property
    def conditioning_weights(self) -> dict[str, float]:
        return {name: float(spec.get("conditioning_weight", 1.0)) for name, spec in self.modalities.items()}


__all__ = ["LatentEBMMultimodalConfig", "image_modality", "text_modality", "MODALITY_KINDS"]
