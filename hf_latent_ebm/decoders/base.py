"""The decoder interface: p(x | z) for a batch, its input checks, and decoding z to observations."""

import torch
from torch import nn

from ..registry import Registry


class Decoder(nn.Module):
    r"""
    p(x | z) for one kind of observation.

    Class attributes:
        input_names (`tuple[str, ...]`): The batch keys the decoder reads (`select` picks them from a dict batch).
        modality (`str` or `None`): The model config family that may name it: "image" ([`LatentEBMConfig`]),
            "text" ([`LatentEBMTextConfig`]) or "multimodal"; None for a decoder that only generic configs
            ([`LatentEBMModelConfig`]) build. Generic configs may name any decoder.
        config_class (`type[PartConfig]` or `None`): The decoder's settings, the keyword arguments of its
            constructor besides `latent_dim` as a strict dataclass (the model config's `decoder_config` is read by
            it; a modality's config supplies some fields from its own, the image size say). A decoder without one
            (a user's, say) gets `decoder_config` as keyword arguments, checked against its signature.
        compilable (`bool`): Whether `negative_log_likelihood` traces into one `torch.compile` graph under
            `torch.func.grad` for a fixed batch shape (no data-dependent shapes or Python control flow on values),
            so the chains' fast path may compile it. Off unless a decoder is tested with it.

    Subclasses implement `negative_log_likelihood`, `decode` and `check_observations`; `compact` may shrink a batch
    before scoring (dropping padding, say) without changing any score.
    """

    input_names: tuple[str, ...] = ("observations",)
    modality: str | None = None
    compilable: bool = False
    config_class: type | None = None

    def negative_log_likelihood(self, observations, latents: torch.Tensor) -> torch.Tensor:
        """-log p(x | z), one value per example (constants may be dropped)."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        """Observations from latents: the likelihood's mean, or a draw where it has no useful mean (text)."""
        raise NotImplementedError

    def check_observations(self, observations, check_values: bool = True) -> None:
        """Raise a ValueError saying what was expected unless `observations` is a batch this decoder scores.
        With `check_values=False` only what needs no look at the values (type, dtype, shape) is checked: no
        device-to-host synchronisation, so it can run on the training path."""
        raise NotImplementedError

    def select(self, batch: dict):
        """This decoder's observations from a dict batch: the tensor of its one input, or a dict of its inputs."""
        missing = [name for name in self.input_names if name not in batch]
        if missing:
            raise ValueError(f"the batch has no {', '.join(missing)} (it has {', '.join(batch) or 'nothing'})")
        if len(self.input_names) == 1:
            return batch[self.input_names[0]]
        return {name: batch[name] for name in self.input_names}

    def compact(self, observations):
        return observations


def decoder_negative_log_likelihood(decoder: Decoder, observations, latents: torch.Tensor,
                                    autocast_dtype: str | None = None, **options) -> torch.Tensor:
    """`decoder.negative_log_likelihood` (with the decoder's own `options`), under autocast to `autocast_dtype`
    ("bfloat16") when given, returned in float32 (the potential adds it to the prior's float32 terms)."""
    if autocast_dtype is None:
        return decoder.negative_log_likelihood(observations, latents, **options)
    with torch.autocast(latents.device.type, dtype=getattr(torch, autocast_dtype)):
        return decoder.negative_log_likelihood(observations, latents, **options).float()


def check_float_batch(name: str, values, trailing_shape: tuple[int, ...], check_values: bool) -> None:
    """Checks shared by decoders of real-valued observations: a non-empty float tensor of shape (batch,
    *trailing_shape), and with `check_values` finite."""
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {values.dtype}")
    if values.dim() != 1 + len(trailing_shape) or tuple(values.shape[1:]) != tuple(trailing_shape):
        raise ValueError(f"{name} must have shape (batch, {', '.join(map(str, trailing_shape))}), "
                         f"got {tuple(values.shape)}")
    if values.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if check_values and not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or inf")


# Decoders by name. It lives beside the base class so that a composite decoder (the multimodal one) can build
# registered parts without importing the package that registers it.
DECODERS = Registry("decoder", Decoder)

__all__ = ["DECODERS", "Decoder", "check_float_batch", "decoder_negative_log_likelihood"]
