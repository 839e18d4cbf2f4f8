"""Encoders q(z | x), by name: `ENCODERS.get(config.encoder_type)`; `register_encoder` adds one."""

from .base import ENCODERS, Encoder
from .experts import AGGREGATIONS, ExpertsEncoder
from .image import ConvImageEncoder
from .ladder import LadderImageEncoder, LadderImageEncoderConfig
from .tabular import TabularEncoder
from .text import TextEncoder
from .vector import MLPEncoder

ENCODERS.register("conv", ConvImageEncoder)
ENCODERS.register("ladder", LadderImageEncoder)
ENCODERS.register("lstm", TextEncoder)
ENCODERS.register("mlp", MLPEncoder)
ENCODERS.register("tabular", TabularEncoder)
ENCODERS.register("experts", ExpertsEncoder)
register_encoder = ENCODERS.register

__all__ = ["ENCODERS", "Encoder", "ConvImageEncoder", "LadderImageEncoder", "LadderImageEncoderConfig", "TextEncoder", "MLPEncoder", "TabularEncoder", "ExpertsEncoder",
           "AGGREGATIONS", "register_encoder"]
