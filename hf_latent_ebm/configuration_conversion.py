"""The conversion of latent-EBM config dicts written before the parts had typed sub-configs (issue 33, item 7): one
documented function, `convert_legacy_config`, which every latent-EBM config's construction applies."""

from .decoders import DECODERS
from .encoders import ENCODERS
from .learners import LEARNERS
from .priors import PRIORS
from .samplers import SAMPLERS

# Flat fields of configs written before the parts had sub-configs, by the sub-config and field that replace them.
LEGACY_PRIOR_FIELDS = {"prior_sigma": "sigma", "energy_hidden_dim": "hidden_dim",
                       "energy_num_hidden_layers": "num_hidden_layers", "energy_activation": "activation",
                       "prior_gradient": "gradient"}
LEGACY_SAMPLER_FIELDS = {"prior_langevin_steps": "prior_steps", "prior_langevin_step_size": "prior_step_size",
                         "prior_langevin_step_schedule": "prior_step_schedule",
                         "posterior_langevin_steps": "posterior_steps",
                         "posterior_langevin_step_size": "posterior_step_size",
                         "posterior_langevin_step_schedule": "posterior_step_schedule",
                         "posterior_langevin_noise_scale": "posterior_noise_scale", "langevin_noise": "noise",
                         "langevin_on_nonfinite": "on_nonfinite", "langevin_fast_path": "fast_path"}
# The learner's flat fields keep their names in `learner_config`.
LEGACY_LEARNER_FIELDS = {name: name for name in (
    "posterior_chain_prior", "decoder_autocast", "energy_magnitude_weight", "vae_free_bits", "posterior_init",
    "prior_learning_rate", "prior_lr_decay", "prior_weight_decay", "decoder_learning_rate", "decoder_lr_decay",
    "label_loss_weight", "mutual_information_weight")}
# The old defaults of the learner's flat fields that only some learners read: an old file carries them for every
# learner, so one at its default is dropped for a learner without the field; another value is kept, and the
# learner's config class rejects it (as the old validation did: vae_free_bits > 0 with learner "mle").
_LEGACY_LEARNER_DEFAULTS = {"vae_free_bits": 0.0, "posterior_init": "prior", "label_loss_weight": 100.0,
                            "mutual_information_weight": 10.0}
# The image and text configs' flat decoder and encoder fields (one flat field may feed both parts: the image
# encoder mirrors the generator's width, the text encoder shares the decoder's embedding and state widths).
LEGACY_DECODER_FIELDS = {"decoder_base_channels": "base_channels", "decoder_sigma": "sigma",
                         "embedding_dim": "embedding_dim", "hidden_dim": "hidden_dim",
                         "num_decoder_layers": "num_layers",
                         "num_attention_heads": "num_heads", "decoder_dropout": "dropout"}
LEGACY_ENCODER_FIELDS = {"decoder_base_channels": "base_channels", "embedding_dim": "embedding_dim",
                         "hidden_dim": "hidden_dim"}
# The parts a latent-EBM config names: per kind, its registry and the config field that names the part.
PART_FIELDS = {"prior": (PRIORS, "prior_type"), "sampler": (SAMPLERS, "sampler_type"), "learner": (LEARNERS, "learner"),
               "decoder": (DECODERS, "decoder_type"), "encoder": (ENCODERS, "encoder_type")}
_LEGACY_FIELDS_OF = {"prior": LEGACY_PRIOR_FIELDS, "sampler": LEGACY_SAMPLER_FIELDS, "learner": LEGACY_LEARNER_FIELDS,
                     "decoder": LEGACY_DECODER_FIELDS, "encoder": LEGACY_ENCODER_FIELDS}
# The generic configs' untyped keyword-argument dicts, renamed (the multimodal specs held the same keys).
LEGACY_RENAMES = {"decoder_kwargs": "decoder_config", "encoder_kwargs": "encoder_config"}
LEGACY_FIELDS = {**LEGACY_PRIOR_FIELDS, **LEGACY_SAMPLER_FIELDS, **LEGACY_LEARNER_FIELDS, **LEGACY_DECODER_FIELDS,
                 **{name: name for name in LEGACY_RENAMES}}


def _is_latent_ebm_config(model_type: str | None) -> bool:
    from transformers import CONFIG_MAPPING

    # A latent-EBM config names its parts; another family's (Chet's) does not.
    return model_type not in CONFIG_MAPPING or "prior_type" in CONFIG_MAPPING[model_type].__dataclass_fields__


def _default_part_names(model_type: str | None) -> dict:
    """The type fields' defaults of the config class registered for `model_type` (what a config.json written with
    `use_diff` leaves out); the image config's for an unknown one."""
    from transformers import CONFIG_MAPPING

    # "latent_ebm" is the image config, registered with the package (importing its module here would be a cycle).
    fields = CONFIG_MAPPING[model_type if model_type in CONFIG_MAPPING else "latent_ebm"].__dataclass_fields__
    return {type_field: fields[type_field].default for _, type_field in PART_FIELDS.values()}


def _renamed_settings(settings: dict, decoder_type: str | None = None) -> dict:
    # The recurrent text decoder took its cell ("lstm"/"gru") as an argument; it is now the registered class's.
    return {key: value for key, value in settings.items() if not (key == "cell" and value == decoder_type)}


def convert_legacy_config(config_dict: dict) -> dict:
    """
    A config dict written before the parts had typed sub-configs (hf_latent_ebm <= issue 33) as today's: each flat
    field moves into its part's sub-config under the name the part's `config_class` gives it, the prior's
    `prior_sigma`, `energy_*`, `prior_gradient` into `prior_config` (`LEGACY_PRIOR_FIELDS`), the chains'
    `prior_langevin_*`, `posterior_langevin_*`, `langevin_noise`, `langevin_on_nonfinite`, `langevin_fast_path` into
    `sampler_config` (`LEGACY_SAMPLER_FIELDS`), the learner's `posterior_chain_prior`, `decoder_autocast`,
    `energy_magnitude_weight`, `vae_free_bits`, `posterior_init`, learning rates, decays, weight decay and the
    coupling learners' `label_loss_weight` / `mutual_information_weight` into `learner_config` under the same names
    (`LEGACY_LEARNER_FIELDS`). A field the named part's class does not have (the energy settings of a "gaussian"
    prior, which the old configs carried but never read) is dropped; for the learner, only when it holds the old
    default (`vae_free_bits` 0 on an MLE model), so that a set value still fails validation. A flat value wins over
    the same field already in the sub-config (a keyword argument given over a preset's sub-config). Fields a file
    left out stay out: the config class's defaults (e.g. the text config's default `sampler_config`) fill them
    in. Applied by every latent-EBM config's construction, hence by `from_dict`, `from_pretrained` and
    `AutoConfig`; a dict without flat fields comes back equal. The input is not modified.

    The decoder's and encoder's flat fields of the image and text configs (`decoder_base_channels`,
    `decoder_sigma`, `embedding_dim`, `hidden_dim`, `num_decoder_layers`, `num_attention_heads`, `decoder_dropout`)
    move into `decoder_config` / `encoder_config` (`LEGACY_DECODER_FIELDS`, `LEGACY_ENCODER_FIELDS`: one flat field
    may feed both, as the image encoder mirrors the generator's width), the generic configs' `decoder_kwargs` /
    `encoder_kwargs` are renamed `decoder_config` / `encoder_config`, and so are the multimodal specs' keys; a
    recurrent text decoder's `cell` argument, now its registered class's, is dropped. A part type the dict leaves
    out is the default of the config class registered for its `model_type`.

    Example: `{"prior_type": "ebm", "prior_sigma": 1.0, "energy_hidden_dim": 200, "prior_langevin_steps": 60}` ->
    `{"prior_type": "ebm", "prior_config": {"sigma": 1.0, "hidden_dim": 200}, "sampler_config": {"prior_steps": 60}}`.
    """
    converted = dict(config_dict)
    if not _is_latent_ebm_config(converted.get("model_type")):
        return converted  # another family's config (Chet's `hidden_dim` is its own field)
    legacy_values = {key: converted.pop(key) for key in list(converted) if key in LEGACY_FIELDS}
    defaults = None
    for old, new in LEGACY_RENAMES.items():
        if old in legacy_values:
            settings = _renamed_settings(legacy_values.pop(old), converted.get("decoder_type"))
            converted[new] = {**settings, **(converted.get(new) or {})}
    for kind, (registry, type_field) in PART_FIELDS.items():
        fields = _LEGACY_FIELDS_OF[kind]
        legacy = {key: value for key, value in legacy_values.items() if key in fields}
        if not legacy:
            continue
        name = converted.get(type_field)
        if name is None:
            defaults = defaults or _default_part_names(converted.get("model_type"))
            name = defaults[type_field]
        part_class = registry.get(name, field=type_field)
        accepted = part_class.config_class.field_names() if part_class.config_class is not None else ()
        sub_config = {fields[key]: value for key, value in legacy.items()
                      if fields[key] in accepted or (kind == "learner" and key in _LEGACY_LEARNER_DEFAULTS
                                                     and value != _LEGACY_LEARNER_DEFAULTS[key])}
        converted[f"{kind}_config"] = {**(converted.get(f"{kind}_config") or {}), **sub_config}
    if isinstance(converted.get("modalities"), dict):
        converted["modalities"] = {name: _converted_spec(spec) for name, spec in converted["modalities"].items()}
    return converted


def _converted_spec(spec):
    """A multimodal spec with `decoder_kwargs` / `encoder_kwargs` renamed `decoder_config` / `encoder_config`."""
    if not isinstance(spec, dict) or not any(old in spec for old in LEGACY_RENAMES):
        return spec
    spec = dict(spec)
    for old, new in LEGACY_RENAMES.items():
        if old in spec:
            spec[new] = _renamed_settings(spec.pop(old), spec.get("decoder_type"))
    return spec


__all__ = ["convert_legacy_config", "PART_FIELDS", "LEGACY_PRIOR_FIELDS", "LEGACY_SAMPLER_FIELDS",
           "LEGACY_LEARNER_FIELDS", "LEGACY_DECODER_FIELDS", "LEGACY_ENCODER_FIELDS", "LEGACY_RENAMES", "LEGACY_FIELDS"]
