"""p(x, y | z) = p(x | z) p(y | z): any decoder plus a Gaussian regression head over real properties y of the same
example (Kong et al. UAI 2023, SGDS's p_gamma(y | z)). The head is a likelihood term like the decoder's, so the
posterior chains of every learner see it without knowing it is there."""

import torch

from ..layers import mlp
from .base import Decoder
from .multimodal import batch_size_of

PROPERTIES = "properties"


class PropertyHeadDecoder(Decoder):
    r"""
    A decoder `base` joined by p(y | z) = N(f(z), sigma^2 I) over `num_properties` standardised properties: -log p(x,
    y | z) = -log p(x | z) + |y - f(z)|^2 / (2 sigma^2), summed over the properties an example has (NaN = unknown,
    left out of its sum).

    Observations are the base decoder's alone (a tensor: the property term is absent), or a dict with the base
    decoder's inputs and `properties`, a (batch, num_properties) float tensor; a dict with `properties` only scores
    z by the property term alone, which is how design chains steer z towards a property target (p(z) p(y* | z)).

    Args:
        base (`Decoder`): The decoder of x (the SMILES decoder, say).
        latent_dim (`int`): Dimension of z.
        num_properties (`int`): How many properties the head predicts.
        hidden_dim (`int`, defaults to 200): Width of the head's hidden layers (GELU; SGDS: 200, Swish).
        num_hidden_layers (`int`, defaults to 1): Hidden layers of the head (SGDS: one).
        sigma (`float`, defaults to 0.2236): Std of p(y | z) on standardised properties; SGDS's MSE weight 10 is
            1 / (2 sigma^2) with sigma = 0.2236.
    """

    def __init__(self, base: Decoder, latent_dim: int, num_properties: int, hidden_dim: int = 200,
                 num_hidden_layers: int = 1, sigma: float = 0.2236):
        super().__init__()
        if num_properties < 1 or not sigma > 0:
            raise ValueError(f"a property head needs num_properties >= 1 and sigma > 0, got {num_properties}, {sigma}")
        self.base, self.num_properties, self.sigma = base, num_properties, sigma
        self.head = mlp(latent_dim, hidden_dim, num_hidden_layers, num_properties)
        self.input_names = tuple(base.input_names) + (PROPERTIES,)
        self.modality = base.modality

    def __getattr__(self, name: str):
        # The base decoder's own calls (a text decoder's `generate`, its token ids) are the joint decoder's too.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("base"), name)

    def split(self, observations) -> tuple[object | None, torch.Tensor | None]:
        """(the base decoder's observations or None, the properties or None)."""
        if not isinstance(observations, dict):
            return observations, None
        base = {name: value for name, value in observations.items() if name != PROPERTIES}
        if not base:
            return None, observations.get(PROPERTIES)
        return (base[self.base.input_names[0]] if len(self.base.input_names) == 1 else base,
                observations.get(PROPERTIES))

    def _as_dict(self, base) -> dict:
        """The base decoder's observations (its one input's tensor, or a dict) as a dict by input name."""
        return base if isinstance(base, dict) else {self.base.input_names[0]: base}

    def select(self, batch: dict):
        """The base decoder's inputs, with the properties where the batch has them."""
        observations = {PROPERTIES: batch[PROPERTIES]} if PROPERTIES in batch else {}
        if any(name in batch for name in self.base.input_names) or not observations:
            observations.update(self._as_dict(self.base.select(batch)))
        return observations

    def predict(self, latents: torch.Tensor) -> torch.Tensor:
        """The head's mean f(z): standardised properties, one row per latent."""
        return self.head(latents)

    def property_negative_log_likelihood(self, properties: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(properties)
        errors = torch.where(known, properties, 0.0) - self.head(latents)
        return (errors.pow(2) * known).sum(dim=1) / (2 * self.sigma**2)

    def negative_log_likelihood(self, observations, latents: torch.Tensor) -> torch.Tensor:
        base, properties = self.split(observations)
        total = self.base.negative_log_likelihood(base, latents) if base is not None else latents.new_zeros(
            latents.shape[0])
        if properties is not None:
            total = total + self.property_negative_log_likelihood(properties, latents)
        return total

    def check_observations(self, observations, check_values: bool = True) -> None:
        base, properties = self.split(observations)
        if base is None and properties is None:
            raise ValueError(f"the batch has neither {', '.join(self.base.input_names)} nor {PROPERTIES}")
        if base is not None:
            self.base.check_observations(base, check_values)
        if properties is None:
            return
        if not isinstance(properties, torch.Tensor) or not properties.is_floating_point() or properties.dim() != 2 \
                or properties.shape[1] != self.num_properties:
            raise ValueError(f"{PROPERTIES} must be a (batch, {self.num_properties}) float tensor, got "
                             f"{getattr(properties, 'dtype', type(properties).__name__)} "
                             f"{tuple(getattr(properties, 'shape', ()))}")
        if base is not None:
            rows = batch_size_of(base)
            if properties.shape[0] != rows:
                raise ValueError(f"{PROPERTIES} has {properties.shape[0]} rows, the batch's other inputs {rows}")
        if check_values and bool(torch.isinf(properties).any()):
            raise ValueError(f"{PROPERTIES} contains inf (NaN marks an unknown property; inf is an error)")

    def compact(self, observations):
        base, properties = self.split(observations)
        if properties is None:
            return self.base.compact(base)
        compacted = {PROPERTIES: properties}
        if base is not None:
            compacted.update(self._as_dict(self.base.compact(base)))
        return compacted

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None):
        return self.base.decode(latents, generator)


__all__ = ["PropertyHeadDecoder", "PROPERTIES"]
