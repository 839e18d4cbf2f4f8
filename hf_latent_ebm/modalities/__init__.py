"""Modality kinds of the multimodal model, by name: `modality(spec["kind"])` is the kind's `Modality` handler, which
the data format, the parts, the model, the CLI and the coherence metrics ask for everything they do differently per
kind; `register_modality` adds one."""

from ..registry import Registry
from .base import Modality, ModalityClassifier
from .image import ImageClassifier, ImageModality, image_modality
from .text import TextClassifier, TextModality, text_modality, text_words

MODALITIES = Registry("modality kind", Modality)
MODALITIES.register("image", ImageModality)
MODALITIES.register("text", TextModality)


def register_modality(name: str, modality_class: type[Modality] | None = None):
    """Register a `Modality` subclass as kind `name` (its `name` attribute is set to it); without a class, return a
    decorator that does."""
    if modality_class is None:
        return lambda cls: register_modality(name, cls)
    MODALITIES.register(name, modality_class)
    modality_class.name = name
    return modality_class


def modality(kind: str) -> Modality:
    """The handler of modality kind `kind`, or a ValueError naming the registered kinds."""
    return MODALITIES.get(kind)()


__all__ = ["MODALITIES", "Modality", "ModalityClassifier", "register_modality", "modality", "ImageModality",
           "TextModality", "ImageClassifier", "TextClassifier", "image_modality", "text_modality", "text_words"]
