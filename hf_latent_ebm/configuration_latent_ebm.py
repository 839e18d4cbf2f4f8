"""Configurations of the latent-space EBM prior models (Pang et al., NeurIPS 2020): shared base and image model."""

from dataclasses import field

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .decoders import DECODERS, decoder_upsampling_plan
from .encoders import ENCODERS
from .samplers import SAMPLERS
from .learners import LEARNERS
from .utils import merge_config_kwargs
from .validation import raise_value_errors, require_at_least
# The conversion of older flat configs lives in its own module; its names stay importable from here.
from .configuration_conversion import (LEGACY_DECODER_FIELDS, LEGACY_ENCODER_FIELDS, LEGACY_FIELDS,
                                       LEGACY_LEARNER_FIELDS, LEGACY_PRIOR_FIELDS, LEGACY_RENAMES,
                                       LEGACY_SAMPLER_FIELDS, PART_FIELDS, convert_legacy_config)

# The learner's choices, declared with its config classes (kept importable from here).
from .learners.base import DECODER_AUTOCAST_DTYPES, POSTERIOR_CHAIN_PRIORS  # noqa: E402
from .learners.mle import POSTERIOR_INITS  # noqa: E402


_SHARED_ARGS = r"""
        prior_type (`str`, *optional*, defaults to `"ebm"`):
            A registered prior (`hf_latent_ebm.priors.PRIORS`): "ebm" for the learned energy-based prior, or
            "gaussian" for the fixed N(0, prior_sigma^2) prior of alternating back-propagation (Han et al. 2017),
            the baseline one flag away.
        learner (`str`, *optional*, defaults to `"mle"`):
            A registered learner (`hf_latent_ebm.learners.LEARNERS`): "mle", maximum likelihood with posterior and
            prior Langevin (Pang et al. 2020); "vae", the Gaussian-prior VAE baseline, an inference network trained
            with the decoder on the ELBO (needs prior_type="gaussian"); "vae_ebm", the variational latent EBM, the
            same inference network and ELBO with the energy-based prior learned on q's samples (Pang & Wu 2021's
            unsupervised part; no posterior chain runs, and generation samples the learned prior).
        sampler_type (`str`, *optional*, defaults to `"langevin"`):
            A registered sampler (`hf_latent_ebm.samplers.SAMPLERS`) that runs the prior and posterior chains:
            "langevin", short-run Langevin (`LangevinConfig`), configured by `sampler_config`.
        encoder_type (`str`, *optional*):
            A registered encoder (`hf_latent_ebm.encoders.ENCODERS`), the inference network q(z | x) of the
            variational learners and of posterior_init="encoder"; built only for them.
        latent_dim (`int`, *optional*, defaults to 16):
            Dimension of z.
        prior_config (`dict`, *optional*, defaults to `{}`):
            The prior's settings, validated against its registered class's `config_class` (`PriorConfig`: `sigma`;
            `EnergyPriorConfig` for "ebm" and "coupling": `sigma`, `hidden_dim`, `num_hidden_layers`,
            `activation`, `gradient`); fields left out take the class's defaults. Replaces the former flat
            `prior_sigma`, `energy_*` and `prior_gradient` fields, which `convert_legacy_config` moves here when an
            older config.json (or a keyword argument) still gives them.
        sampler_config (`dict`, *optional*, defaults to `{}`):
            The chains' settings, validated against the sampler's `config_class` (`LangevinConfig` for "langevin":
            `prior_steps` 60, `prior_step_size` 0.4, `prior_step_schedule`, `posterior_steps` 20,
            `posterior_step_size` 0.1, `posterior_step_schedule`, `posterior_noise_scale` 1.0, `noise`,
            `on_nonfinite` "raise", `fast_path` "auto"); fields left out take the config class's defaults (the text
            config's differ) and then the sampler class's. Replaces the former flat `prior_langevin_*`,
            `posterior_langevin_*`, `langevin_noise`, `langevin_on_nonfinite` and `langevin_fast_path` fields, which
            `convert_legacy_config` moves here when an older config.json (or a keyword argument) still gives them.
        learner_config (`dict`, *optional*, defaults to `{}`):
            The learner's settings, validated against its registered class's `config_class` (`LearnerConfig` and
            its subclasses in `hf_latent_ebm.learners`); fields left out take the config class's defaults (the
            text and classification configs' differ) and then the learner's. Every learner reads
            `posterior_chain_prior` ("model": the posterior chain's potential uses the learned energy; "reference":
            p0 alone, so the energy learns the aggregate posterior of a p0-prior model, which cuts the feedback
            loop of a tempered chain), `decoder_autocast` (None, or "bfloat16" to run the decoder under autocast,
            the prior in float32), `energy_magnitude_weight` (0.0: the weight of mean E(z)^2 over posterior and
            prior samples, Du & Mordatch 2019), `prior_learning_rate` 2e-4, `prior_lr_decay` 0.998,
            `prior_weight_decay` 0.0, `decoder_learning_rate` 5e-4 (also the encoder's), `decoder_lr_decay` 0.998
            (decays apply every `lr_decay_steps`). "mle" and "mle_encoder" add `posterior_init` ("prior": inference
            chains start from p0; "encoder": from an inference network trained alongside); "vae" and "vae_ebm" add
            `vae_free_bits` (0.0: the FB-VAE floor, nats per latent dimension); the coupling learners add
            `label_loss_weight` 100 and `mutual_information_weight` 10. Replaces the former flat fields of the same
            names, which `convert_legacy_config` moves here when an older config.json (or a keyword argument) still
            gives them.
        lr_decay_steps (`int`, *optional*, defaults to 600):
            Steps per decay of the learner's groups (the paper decays once per epoch). With the Adam betas an
            optimiser setting of the model (`build_optimizer`, `build_lr_scheduler`), not of the learner.
        adam_beta1 (`float`, *optional*, defaults to 0.5):
            Adam beta1 for both groups.
        adam_beta2 (`float`, *optional*, defaults to 0.999):
            Adam beta2 for both groups."""


@strict
class LatentEBMBaseConfig(PreTrainedConfig):
    """The parts, prior, sampler, learner and optimiser settings every latent-EBM model shares (documented in
    `LatentEBMConfig`). A modality's config adds its decoder's fields, names the decoders it builds
    (`part_modality`, matched against each part's `modality`) and overrides defaults where that modality needs
    other ones."""

    part_modality = "image"

    prior_type: str = "ebm"
    decoder_type: str = "conv"
    encoder_type: str = "conv"
    learner: str = "mle"
    sampler_type: str = "langevin"
    latent_dim: int = 16
    prior_config: dict = field(default_factory=dict)
    sampler_config: dict = field(default_factory=dict)
    learner_config: dict = field(default_factory=dict)
    decoder_config: dict = field(default_factory=dict)
    encoder_config: dict = field(default_factory=dict)
    lr_decay_steps: int = 600
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999

    def __post_init__(self, **kwargs):
        legacy = {key: kwargs.pop(key) for key in list(kwargs) if key in LEGACY_FIELDS}
        converted_fields = [name for kind, (_, type_field) in PART_FIELDS.items()
                            for name in (type_field, f"{kind}_config")] + ["modalities"] * hasattr(self, "modalities")
        converted = convert_legacy_config({**legacy, **{name: getattr(self, name) for name in converted_fields}})
        for name in converted_fields:
            setattr(self, name, converted[name])
        # A partial sub-config keeps this class's defaults for the fields it leaves out (the text config's chains).
        for kind in PART_FIELDS:
            setattr(self, f"{kind}_config", self._with_class_defaults(kind))
        super().__post_init__(**kwargs)

    def _with_class_defaults(self, kind: str) -> dict:
        """The `<kind>_config` dict over this config class's default one (the fields the named part accepts)."""
        name = f"{kind}_config"
        given = getattr(self, name)
        if not isinstance(given, dict):
            return given  # part_config reports it
        defaults = type(self).__dataclass_fields__[name].default_factory()
        if not defaults:
            return dict(given)  # a copy: the caller's dict (a shared preset) is not the config's
        registry, type_field = PART_FIELDS[kind]
        accepted = registry.config_class(getattr(self, type_field), type_field).field_names()
        return {**{key: value for key, value in defaults.items() if key in accepted}, **given}

    def part_config(self, kind: str):
        """The typed config of the part of `kind` ("prior", "sampler", "learner", and "decoder" / "encoder" where
        the part declares a `config_class`): its sub-config dict, over this config class's default sub-config (and,
        for the decoder and encoder, with the fields this config supplies, `part_facts`), read by the part's
        `config_class` (the part's defaults fill in the rest)."""
        registry, type_field = PART_FIELDS[kind]
        config_class = registry.config_class(getattr(self, type_field), type_field)
        if config_class is None:
            raise ValueError(f"{kind}_type {getattr(self, type_field)!r} declares no config class; "
                             f"use part_arguments({kind!r})")
        return config_class.from_dict(self._part_settings(kind), f"{kind}_config")

    def part_facts(self, kind: str) -> dict:
        """The settings of the decoder or encoder that this config supplies from its own fields rather than from
        `decoder_config` / `encoder_config` (the image size, the vocabulary: facts the data, the tokenizer and both
        parts share). Nothing for the generic configs."""
        return {}

    def _part_settings(self, kind: str) -> dict:
        settings = self._with_class_defaults(kind)
        if kind not in ("decoder", "encoder") or not isinstance(settings, dict):
            return settings
        facts = self.part_facts(kind)
        clash = sorted(set(settings) & set(facts))
        if clash:
            raise ValueError(f"{kind}_config: {clash} are set by this config's own field(s) of the same name, not "
                             f"in {kind}_config")
        return {**settings, **facts}

    def part_arguments(self, kind: str) -> dict:
        """The keyword arguments (besides `latent_dim`) that build the decoder or encoder: `<kind>_config` with the
        fields this config supplies (`part_facts`), checked against the part's `config_class` (or, for a part that
        declares none, its constructor's signature); a ValueError naming `<kind>_config` otherwise."""
        registry, type_field = PART_FIELDS[kind]
        return registry.arguments(getattr(self, type_field), self._part_settings(kind), f"{kind}_config", type_field)

    def validate_parts(self):
        prior_config = self.part_config("prior")
        decoder_class = DECODERS.get(self.decoder_type, field="decoder_type")
        self._check_modality("decoder", decoder_class)
        self._check_layers("decoder", prior_config)
        learner = LEARNERS.get(self.learner, field="learner")
        SAMPLERS.get(self.sampler_type, field="sampler_type").check_config(self.part_config("sampler"), decoder_class)
        learner_config = self.part_config("learner")
        learner.check_config(self.learner, self.prior_type, self.num_labels)
        required = PART_FIELDS["prior"][0].get(self.prior_type).required_learner
        if required is not None and self.learner != required:
            raise ValueError(f"prior_type={self.prior_type!r} is learned by learner={required!r}, not {self.learner!r}")
        if learner.needs_encoder(learner_config):
            self._check_modality("encoder", ENCODERS.get(self.encoder_type, field="encoder_type"))
            self._check_layers("encoder", prior_config)

    def _check_layers(self, kind: str, prior_config) -> None:
        # The part's settings are checked here (`part_arguments`); a part over a layered z (the ladder decoder and
        # encoder) must also read the prior's layers.
        part_layers = self.part_arguments(kind).get("layer_sizes")
        prior_layers = getattr(prior_config, "layer_sizes", None)
        if part_layers is not None and prior_layers is not None and list(part_layers) != list(prior_layers):
            raise ValueError(f"{kind}_config.layer_sizes {list(part_layers)} must equal prior_config.layer_sizes "
                             f"{list(prior_layers)}: the {kind} reads the prior's layers (bottom to top)")

    def _check_modality(self, kind: str, part_class: type) -> None:
        # A generic config may name any part; a modality's config only its modality's (which take its facts).
        if self.part_modality is not None and part_class.modality != self.part_modality:
            name = getattr(self, f"{kind}_type")
            raise ValueError(f"{kind}_type {name!r} is for {part_class.modality or 'generic'} models; "
                             f"{type(self).__name__} takes {self.part_modality or 'generic'} {kind}s")

    def validate_prior(self):
        require_at_least(self, ("latent_dim",))

    def validate_optimization(self):
        # The learner's rates and decays are checked by its config class (validate_parts).
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.lr_decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be >= 1, got {self.lr_decay_steps}")


@raise_value_errors
@strict
class LatentEBMConfig(LatentEBMBaseConfig):
    r"""
    Configuration of [`LatentEBMForImageGeneration`]: a latent EBM prior p(z) = exp(-E(z)) N(z; 0, prior_sigma^2) / Z
    over a `latent_dim`-dimensional z, and a DCGAN-style generator x = g(z) + N(0, decoder_sigma^2).

    The defaults keep the paper's algorithm (Langevin steps and step sizes, sigmas, energy MLP, Adam betas) with a
    smaller latent and generator and higher learning rates, sized for 28x28 MNIST in 1000 steps on a CPU;
    `LatentEBMConfig.paper_svhn()` gives the paper's SVHN setting.

    Args:
        decoder_type (`str`, *optional*, defaults to `"conv"`): A registered image decoder.
        encoder_type (`str`, *optional*, defaults to `"conv"`): A registered image encoder (the generator mirrored).
        image_size (`int`, *optional*, defaults to 28):
            Side of the square images; base * 2**n with base in 4..7 (28, 32, 64, ...). Given to the decoder and
            the encoder (the data's shape, not a setting of either).
        num_channels (`int`, *optional*, defaults to 1):
            Image channels (1 grayscale, 3 RGB); given to both parts as `image_size` is.
        decoder_config (`dict`, *optional*, defaults to `{}`):
            The generator's settings (`ConvImageDecoderConfig`): `base_channels` 16 (`ngf`; the widest layer has
            `ngf * 2**n` channels) and `sigma` 0.3 (std of the Gaussian likelihood p(x | z)). Replaces the former
            flat `decoder_base_channels` and `decoder_sigma`, which `convert_legacy_config` moves here.
        encoder_config (`dict`, *optional*, defaults to `{}`):
            The conv encoder's settings (`ConvImageEncoderConfig`): `base_channels` 16 (an older config's
            `decoder_base_channels` sets both).""" + _SHARED_ARGS + r"""

    Example:

    ```python
    >>> from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
    >>> model = LatentEBMForImageGeneration(LatentEBMConfig(image_size=32, num_channels=3))
    >>> model.sample(4).shape
    torch.Size([4, 3, 32, 32])
    ```"""

    model_type = "latent_ebm"

    image_size: int = 28
    num_channels: int = 1

    def part_facts(self, kind: str) -> dict:
        return {"image_size": self.image_size, "num_channels": self.num_channels}

    @classmethod
    def hierarchical(cls, layer_sizes=(2, 2, 2, 10), energy: str | None = None, variational: bool = False,
                     **overrides) -> "LatentEBMConfig":
        """Layers z_1 .. z_L (`layer_sizes`, bottom to top; ICCV 2023's hierarchical-sampling layers by default) on
        the ladder generator under the hierarchical prior (Cui, Wu & Han 2023). By default CVPR 2023's model:
        Gaussian links tilted by layer-wise energies, learned by maximum likelihood; with `variational` ICCV 2023's:
        one energy on all layers over N(0, I) (no links), learned by the ELBO with a bottom-up ladder encoder
        (learner "vae_ebm"). `energy` ("layerwise" or "joint") overrides the energy."""
        layers = {"layer_sizes": list(layer_sizes)}
        energy = energy or ("joint" if variational else "layerwise")
        settings = dict(latent_dim=sum(layer_sizes), prior_type="hierarchical", decoder_type="ladder",
                        prior_config={**layers, "energy": energy, "links": not variational},
                        decoder_config=dict(layers))
        if variational:
            settings.update(learner="vae_ebm", encoder_type="ladder", encoder_config=dict(layers))
        return cls(**merge_config_kwargs(settings, overrides))

    @classmethod
    def paper_svhn(cls, **overrides) -> "LatentEBMConfig":
        """The SVHN setting of Pang et al. 2020 (32x32x3, nz 100, ngf 64, ndf 200; 733 steps per epoch)."""
        settings = dict(image_size=32, num_channels=3, latent_dim=100, decoder_config={"base_channels": 64},
                        encoder_config={"base_channels": 64}, lr_decay_steps=733,
                        learner_config={"prior_learning_rate": 2e-5, "decoder_learning_rate": 1e-4})
        return cls(**merge_config_kwargs(settings, overrides))


@raise_value_errors
@strict
class LatentEBMModelConfig(LatentEBMBaseConfig):
    r"""
    Configuration of [`LatentEBMModel`], the modality-agnostic model: any registered decoder and encoder
    (`register_decoder`, `register_encoder`), configured by `decoder_config` / `encoder_config` (the part's
    `config_class` fields, or for a part without one the keyword arguments of its constructor besides latent_dim),
    with every prior, sampler and learner setting of [`LatentEBMConfig`].

    Args:
        decoder_type (`str`, *optional*, defaults to `"mlp"`): A registered generic decoder; "mlp" is a Gaussian MLP
            over real vectors (`observations` of shape (batch, observation_dim)).
        decoder_config (`dict`, *optional*, defaults to `{}`): The decoder's settings, e.g. {"observation_dim": 8,
            "sigma": 0.5} for "mlp" (`GaussianMLPDecoderConfig`). Replaces the former `decoder_kwargs`.
        encoder_type (`str`, *optional*, defaults to `"mlp"`): A registered generic encoder.
        encoder_config (`dict`, *optional*, defaults to `{}`): The encoder's settings (replaces `encoder_kwargs`).

    Example:

    ```python
    >>> from hf_latent_ebm import LatentEBMModel, LatentEBMModelConfig
    >>> config = LatentEBMModelConfig(latent_dim=4, decoder_config={"observation_dim": 8})
    >>> LatentEBMModel(config).sample(3).shape
    torch.Size([3, 8])
    ```"""

    model_type = "latent_ebm_model"
    part_modality = None

    decoder_type: str = "mlp"
    encoder_type: str = "mlp"


__all__ = ["convert_legacy_config", "LEGACY_PRIOR_FIELDS", "LEGACY_SAMPLER_FIELDS", "LEGACY_LEARNER_FIELDS",
           "LEGACY_DECODER_FIELDS", "LEGACY_ENCODER_FIELDS", "LEGACY_RENAMES",
           "LEGACY_FIELDS",
           "LatentEBMBaseConfig", "LatentEBMConfig", "LatentEBMModelConfig", "decoder_upsampling_plan",
           "raise_value_errors"]
