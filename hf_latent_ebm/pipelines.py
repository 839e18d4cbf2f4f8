"""Diffusers-like pipelines over the latent-EBM models."""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers.utils import ModelOutput

from .utils import to_pil, to_uint8

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class LatentEBMPipelineOutput(ModelOutput):
    """
    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            PIL images, a uint8 (N, H, W, C) array, a float (N, C, H, W) tensor in [-1, 1], or, for
            output_type="latent", the latents themselves.
        latents (`torch.Tensor` of shape `(N, latent_dim)`): The prior samples the images were decoded from.
    """

    images: list[Image.Image] | np.ndarray | torch.Tensor | None = None
    latents: torch.Tensor | None = None


class LatentEBMPipeline:
    r"""
    Unconditional generation: short-run prior Langevin from p0, then the decoder.

    Args:
        model (`LatentEBMForImageGeneration`): A trained model.
    """

    def __init__(self, model):
        self.model = model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "LatentEBMPipeline":
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(pretrained_model_name_or_path, **kwargs).eval())

    @torch.no_grad()
    def __call__(
        self,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        step_size: float | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> LatentEBMPipelineOutput | tuple:
        r"""
        Args:
            num_samples (`int`, defaults to 1): Number of images.
            generator (`torch.Generator`, *optional*): Makes the samples reproducible.
            num_inference_steps (`int`, *optional*): Prior Langevin steps (the config's by default).
            step_size (`float`, *optional*): Prior Langevin step size (the config's by default).
            latents (`torch.Tensor`, *optional*): Prior samples to decode instead of running the chain.
            output_type (`str`, defaults to "pil"): "pil", "np", "pt" or "latent".
            return_dict (`bool`, defaults to True): Return a `LatentEBMPipelineOutput` rather than a tuple.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if latents is None:
            latents = self.model.sample_latents(num_samples, generator, num_inference_steps, step_size)
        if output_type == "latent":
            images = latents
        else:
            decoded = self.model.decode(latents)
            images = {"pil": to_pil, "np": to_uint8, "pt": lambda x: x}[output_type](decoded)
        if not return_dict:
            return (images, latents)
        return LatentEBMPipelineOutput(images=images, latents=latents)
