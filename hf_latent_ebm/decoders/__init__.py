"""Decoders p(x | z), by name: `DECODERS.get(config.decoder_type)`; `register_decoder` adds one."""

from .base import DECODERS, Decoder, check_float_batch, decoder_negative_log_likelihood
from .image import ConvImageDecoder, decoder_upsampling_plan
from .ladder import LadderImageDecoder, LadderImageDecoderConfig
from .multimodal import MultimodalDecoder
from .tabular import TabularDecoder
from .text import GRUTextDecoder, RecurrentTextDecoder, TextDecoderBase, TransformerTextDecoder
from .vector import GaussianMLPDecoder

DECODERS.register("conv", ConvImageDecoder)
DECODERS.register("ladder", LadderImageDecoder)
DECODERS.register("lstm", RecurrentTextDecoder)
DECODERS.register("gru", GRUTextDecoder)
DECODERS.register("transformer", TransformerTextDecoder)
DECODERS.register("mlp", GaussianMLPDecoder)
DECODERS.register("tabular", TabularDecoder)
DECODERS.register("multimodal", MultimodalDecoder)
register_decoder = DECODERS.register

__all__ = ["DECODERS", "Decoder", "ConvImageDecoder", "LadderImageDecoder", "LadderImageDecoderConfig", "RecurrentTextDecoder", "GRUTextDecoder", "TransformerTextDecoder",
           "TextDecoderBase", "GaussianMLPDecoder", "TabularDecoder", "MultimodalDecoder", "check_float_batch",
           "decoder_negative_log_likelihood", "decoder_upsampling_plan", "register_decoder"]
