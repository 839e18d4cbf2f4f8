"""Decoders p(x | z): each builds x from z and scores -log p(x | z) per example."""

from .image import ConvImageDecoder

__all__ = ["ConvImageDecoder"]
