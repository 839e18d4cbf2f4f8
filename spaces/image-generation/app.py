"""Gradio Space: sample a latent-EBM prior image model, reconstruct an uploaded image and score it.

The model is a local folder or Hub id given by LEBM_IMAGE_MODEL; by default the bundled MNIST model beside this
file (trained by the README's main job), so the Space starts offline.
"""

import os
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the model type)
from hf_latent_ebm.utils import to_pil

DEFAULT_MODEL = Path(__file__).parent / "default_model"
MAX_SAMPLES, MAX_STEPS, MAX_STEP_SIZE = 64, 200, 1.0


def build_demo(model_path: str | os.PathLike | None = None) -> gr.Blocks:
    model = AutoModel.from_pretrained(model_path or os.environ.get("LEBM_IMAGE_MODEL", DEFAULT_MODEL)).eval()
    config = model.config

    def sample(seed: float, num_samples: float, steps: float, step_size: float) -> list[Image.Image]:
        generator = torch.Generator().manual_seed(int(seed))
        latents = model.sample_latents(int(num_samples), generator, num_steps=int(steps), step_size=float(step_size))
        return [image.resize((112, 112), Image.NEAREST) for image in to_pil(model.decode(latents))]

    def reconstruct(image: Image.Image | None, seed: float) -> tuple[Image.Image, str]:
        if image is None:
            raise gr.Error("upload an image first")
        mode = "L" if config.num_channels == 1 else "RGB"
        array = np.asarray(image.convert(mode).resize((config.image_size, config.image_size), Image.BILINEAR))
        pixels = torch.from_numpy(array.astype(np.float32) / 127.5 - 1).reshape(
            1, config.image_size, config.image_size, config.num_channels).permute(0, 3, 1, 2)
        generator = torch.Generator().manual_seed(int(seed))
        reconstruction = model.reconstruct(pixels, generator)
        score = model.anomaly_score(pixels, torch.Generator().manual_seed(int(seed)))
        return (to_pil(reconstruction)[0].resize((112, 112), Image.NEAREST),
                f"{score.item():.1f}  (-log p(x, z) up to a constant; higher = more anomalous)")

    # The sliders' bounds are enforced by Gradio on the server too, so API callers cannot exceed them either.
    with gr.Blocks(title="Latent EBM prior: image generation") as demo:
        gr.Markdown("# Latent-space EBM prior\nShort-run Langevin in the latent space, then the generator "
                    "(Pang et al., NeurIPS 2020).")
        with gr.Tab("Sample"):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                num_samples = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Number of samples")
                chain = config.part_config("sampler")
                steps = gr.Slider(0, MAX_STEPS, value=chain.prior_steps, step=1, label="Langevin steps")
                step_size = gr.Slider(0.01, MAX_STEP_SIZE, value=chain.prior_step_size, step=0.01, label="Step size")
            sample_button = gr.Button("Sample", variant="primary", elem_id="sample-button")
            gallery = gr.Gallery(label=f"Samples from the prior, one per tile, 8 per row ({config.image_size}x"
                                       f"{config.image_size} shown at 112x112)", columns=8, elem_id="gallery")
            sample_button.click(sample, [seed, num_samples, steps, step_size], gallery, api_name="sample")
        with gr.Tab("Reconstruct"):
            with gr.Row():
                upload = gr.Image(type="pil", label="Image", image_mode=None)
                reconstruction = gr.Image(type="pil", label="Reconstruction")
            score = gr.Textbox(label="Anomaly score", elem_id="score")
            gr.Button("Reconstruct", elem_id="reconstruct-button").click(
                reconstruct, [upload, seed], [reconstruction, score], api_name="reconstruct")
    return demo


if __name__ == "__main__":
    build_demo().launch()
