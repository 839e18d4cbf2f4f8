"""Configuration of the multimodal latent-EBM model: one shared latent, one decoder and one encoder per modality."""

from dataclasses import field

from huggingface_hub.dataclasses import strict

from .configuration_latent_ebm import LatentEBMBaseConfig, raise_value_errors
from .decoders import DECODERS
from .decoders.multimodal import MODALITY_MASK
from .encoders import AGGREGATIONS, ENCODERS
from .modalities import MODALITIES, image_modality, text_modality
from .modalities.text import TEXT_CONDITIONING_WEIGHT

RESERVED_NAMES = (MODALITY_MASK, "label", "labels")
CROSS_MODAL_SAMPLING = ("posterior", "encoder")
SPEC_KEYS = ("kind", "decoder_type", "decoder_config", "encoder_type", "encoder_config")
# Optional (a spec saved before it existed means 1): w_m, see `LatentEBMForMultimodalGeneration.conditional_latents`.
OPTIONAL_SPEC_KEYS = ("conditioning_weight",)


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
            Modality name -> spec: `kind` (a registered modality kind: "image", "text", ...), `decoder_type` /
            `decoder_config` (a registered decoder and its settings, checked against its config class),
            `encoder_type` / `encoder_config`, and
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
            if spec["kind"] not in MODALITIES:
                raise ValueError(f"modality {name!r}: kind must be one of the registered modality kinds "
                                 f"{MODALITIES.names()}, got {spec['kind']!r}")
            for kind, registry in (("decoder", DECODERS), ("encoder", ENCODERS)):
                registry.arguments(spec[f"{kind}_type"], spec[f"{kind}_config"], f"modalities.{name}.{kind}_config",
                                   f"modalities.{name}.{kind}_type")
            weight = spec.get("conditioning_weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                raise ValueError(f"modality {name!r}: conditioning_weight must be a number > 0, got {weight!r}")
        # The dict's order is the modalities' order (of modality_mask's columns, of the parts); modality_order, which
        # config.json needs because it sorts its keys, may only repeat it (`from_dict` restores it on loading).
        if self.modality_order is not None and list(self.modality_order) != list(self.modalities):
            raise ValueError(f"modality_order {self.modality_order} must list the modalities in the order of "
                             f"`modalities`, {list(self.modalities)} (or be None)")
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

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "LatentEBMMultimodalConfig":
        # config.json holds the modalities with sorted keys and their order in modality_order: put them back in it.
        order, modalities = config_dict.get("modality_order"), config_dict.get("modalities")
        if isinstance(order, list) and isinstance(modalities, dict) and sorted(order) == sorted(modalities):
            config_dict = {**config_dict, "modalities": {name: modalities[name] for name in order}}
        return super().from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict:
        # config.json sorts its keys, so the modalities' order is saved as a list of its own.
        output = super().to_dict()
        if output.get("modality_order") is None:
            output["modality_order"] = list(self.modalities)
        return output

    def part_facts(self, kind: str) -> dict:
        if kind == "encoder":
            return {"modalities": self.modalities, "aggregation": self.aggregation}
        return {"modalities": self.modalities}

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(self.modalities)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: spec["kind"] for name, spec in self.modalities.items()}

    @property
    def conditioning_weights(self) -> dict[str, float]:
        return {name: float(spec.get("conditioning_weight", 1.0)) for name, spec in self.modalities.items()}


__all__ = ["LatentEBMMultimodalConfig", "image_modality", "text_modality", "TEXT_CONDITIONING_WEIGHT"]
