"""p(x_1, ..., x_M | z) for several modalities sharing one latent: one registered decoder per modality, the
log-likelihoods of the modalities present summed."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..modalities import modality
from ..registry import PartConfig
from .base import DECODERS, Decoder

MODALITY_MASK = "modality_mask"


def batch_size_of(observations) -> int:
    """The number of examples in a batch: a tensor's first dimension, or that of a dict batch's first tensor."""
    if isinstance(observations, dict):
        observations = next(value for value in observations.values() if isinstance(value, torch.Tensor))
    return observations.shape[0]


def first_rows(observations, count: int):
    """The first `count` examples of a batch (a tensor, or a dict batch's tensors)."""
    if isinstance(observations, dict):
        return {name: first_rows(value, count) for name, value in observations.items()}
    return observations[:count] if isinstance(observations, torch.Tensor) else observations


def to_scored_values(kind: str, values: torch.Tensor) -> torch.Tensor:
    """A modality's batch as stored (uint8 images, token ids, ...) as what its parts score (images as floats in
    [-1, 1]): the kind's `Modality.to_scored_values`."""
    return modality(kind).to_scored_values(values)


def build_modality_parts(registry, kind: str, latent_dim: int, modalities: dict) -> nn.ModuleDict:
    """One registered part per modality, from its spec's `{kind}_type` and `{kind}_config` (see
    `LatentEBMMultimodalConfig`), checked against the part's config class as a model's own parts are."""
    return nn.ModuleDict({name: registry.build(spec[f"{kind}_type"], latent_dim, spec[f"{kind}_config"],
                                               f"modalities.{name}.{kind}_config", f"modalities.{name}.{kind}_type")
                          for name, spec in modalities.items()})


@strict
@dataclasses.dataclass
class MultimodalDecoderConfig(PartConfig):
    """Settings of the multimodal decoder: `modalities`, name -> spec, whose `decoder_type` / `decoder_config` are
    each modality's decoder and its config (the multimodal model's config supplies its `modalities`)."""

    modalities: dict


class MultimodalDecoder(Decoder):
    r"""
    One decoder per modality over one shared z: -log p(x | z) = sum over the modalities present in each example of
    that modality's -log p(x_m | z), so examples with missing modalities train (and chains infer z) on what they
    have.

    A batch is a dict with a tensor per modality (uint8 or [-1, 1] float images, token ids) and `modality_mask`, a
    (batch, M) bool tensor saying which modalities each example has; a missing modality's row holds any valid
    placeholder (zeros, a <bos> <eos> text), which no score reads. A modality absent from the dict is missing in
    every example.

    Args:
        latent_dim (`int`): Dimension of z.
        modalities (`dict`): Name -> spec with `kind`, `decoder_type` (a registered decoder) and `decoder_config`.
    """

    modality = "multimodal"
    config_class = MultimodalDecoderConfig

    def __init__(self, latent_dim: int, modalities: dict):
        super().__init__()
        self.names = tuple(modalities)
        self.kinds = {name: spec["kind"] for name, spec in modalities.items()}
        self.decoders = build_modality_parts(DECODERS, "decoder", latent_dim, modalities)
        self.input_names = self.names + (MODALITY_MASK,)

    def select(self, batch: dict) -> dict:
        present = [name for name in self.names if name in batch]
        if not present:
            raise ValueError(f"the batch has none of the modalities {', '.join(self.names)} "
                             f"(it has {', '.join(batch) or 'nothing'})")
        observations = {name: batch[name] for name in present}
        if MODALITY_MASK in batch:
            observations[MODALITY_MASK] = batch[MODALITY_MASK]
        else:  # every example has the modalities the batch holds
            mask = torch.zeros(batch_size_of(observations), len(self.names), dtype=torch.bool,
                               device=observations[present[0]].device)
            mask[:, [self.names.index(name) for name in present]] = True
            observations[MODALITY_MASK] = mask
        return observations

    def check_observations(self, observations, check_values: bool = True) -> None:
        """A dict of modality tensors, each a batch its decoder scores, and a (batch, M) bool `modality_mask`;
        with `check_values`, every example has at least one modality."""
        if not isinstance(observations, dict):
            raise ValueError(f"a multimodal batch is a dict of modality tensors, got {type(observations).__name__}")
        unknown = [name for name in observations if name not in self.input_names]
        if unknown:
            raise ValueError(f"unknown modality {', '.join(map(repr, unknown))}: this model has "
                             f"{', '.join(self.names)}")
        mask = observations.get(MODALITY_MASK)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2 \
                or mask.shape[1] != len(self.names):
            raise ValueError(f"{MODALITY_MASK} must be a (batch, {len(self.names)}) bool tensor, got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
        for name in self.names:
            if name not in observations:
                continue
            values = observations[name]
            try:
                self.decoders[name].check_observations(to_scored_values(self.kinds[name], values), check_values)
            except ValueError as error:
                raise ValueError(f"modality {name!r}: {error}") from error
            if values.shape[0] != mask.shape[0]:
                raise ValueError(f"modality {name!r} has {values.shape[0]} examples, {MODALITY_MASK} has "
                                 f"{mask.shape[0]}")
        if check_values:
            held = torch.zeros_like(mask)
            for index, name in enumerate(self.names):
                if name in observations:
                    held[:, index] = True
            empty = (~(mask & held).any(dim=1)).nonzero().flatten().tolist()
            if empty:
                raise ValueError(f"example(s) {empty[:10]} have no modality present (every example needs at least "
                                 f"one of {', '.join(self.names)})")

    def compact(self, observations: dict) -> dict:
        """Images as floats once per batch, text without all-padding columns."""
        return {name: values if name == MODALITY_MASK
                else self.decoders[name].compact(to_scored_values(self.kinds[name], values))
                for name, values in observations.items()}

    def negative_log_likelihood(self, observations: dict, latents: torch.Tensor,
                                modality_weights: dict[str, float] | None = None) -> torch.Tensor:
        """The sum over the modalities each example has of -log p(x_m | z), each times its weight in
        `modality_weights` (1 for a modality it does not name)."""
        mask = observations[MODALITY_MASK].to(latents.dtype)
        weights = modality_weights or {}
        total = latents.new_zeros(latents.shape[0])
        for index, name in enumerate(self.names):
            if name in observations:
                scores = self.decoders[name].negative_log_likelihood(
                    to_scored_values(self.kinds[name], observations[name]), latents)
                total = total + scores * mask[:, index] * weights.get(name, 1.0)
        return total

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Every modality's observations: images in [-1, 1], sampled token ids."""
        return {name: decoder.decode(latents, generator) for name, decoder in self.decoders.items()}


__all__ = ["MultimodalDecoder", "MODALITY_MASK", "batch_size_of", "to_scored_values", "build_modality_parts"]
