"""Gradio Space: sample a hierarchical latent-EBM model and redraw one layer of latents to see what it controls.

The model is a local folder or Hub id given by LEBM_HIERARCHICAL_MODEL; by default the bundled MNIST model beside
this file (`default_model/`, a 4-layer joint EBM prior on a ladder generator), so the Space starts offline.
"""

import os
from pathlib import Path

import gradio as gr
import torch
from PIL import Image
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the model type)
from hf_latent_ebm.utils import image_grid, to_pil

DEFAULT_MODEL = Path(__file__).parent / "default_model"
MAX_SAMPLES, TILE = 32, 84


def layer_choices(num_layers: int) -> list[tuple[str, int]]:
    """The layer picker's entries, top first: (label, layer number; 1 is next to the image)."""
    names = {num_layers: "top", 1: "bottom, next to the image"}
    return [(f"layer {layer}" + (f" ({names[layer]})" if layer in names else ""), layer)
            for layer in range(num_layers, 0, -1)]


def build_demo(model_path: str | os.PathLike | None = None) -> gr.Blocks:
    model = AutoModel.from_pretrained(model_path or os.environ.get("LEBM_HIERARCHICAL_MODEL", DEFAULT_MODEL)).eval()
    if not hasattr(model.prior, "layer_sweep"):
        raise ValueError(f"this Space needs a model with a layered prior (prior_type 'hierarchical'), not "
                         f"{model.config.prior_type!r}")
    num_layers = model.prior.num_layers

    def tiles(latents: torch.Tensor) -> list[Image.Image]:
        return [image.resize((TILE, TILE), Image.NEAREST) for image in to_pil(model.decode(latents))]

    def resample(seed: float, num_samples: float, layer: float) -> tuple[list[Image.Image], list[Image.Image]]:
        if int(layer) not in range(1, num_layers + 1):  # an API caller can send any number
            raise gr.Error(f"layer must be one of 1..{num_layers}, got {layer}")
        generator = torch.Generator().manual_seed(int(seed))
        latents = model.sample_latents(int(num_samples), generator)
        return tiles(latents), tiles(model.resample_layer(latents, layer=int(layer), generator=generator))

    def sweep(seed: float, num_samples: float) -> Image.Image:
        generator = torch.Generator().manual_seed(int(seed))
        rows = model.prior.layer_sweep(model.sample_latents(int(num_samples), generator), model.prior_sampler(),
                                       generator)
        grid = image_grid(model.decode(rows.flatten(0, 1)), num_columns=int(num_samples))
        return grid.resize((grid.width * 3, grid.height * 3), Image.NEAREST)

    sizes = model.prior.layer_sizes
    with gr.Blocks(title="Hierarchical latent EBM: what each layer controls") as demo:
        gr.Markdown(f"# Hierarchical latent-space EBM prior\n{num_layers} layers of latents ({sizes} dimensions, "
                    f"bottom to top) under one energy-based prior (Cui, Wu & Han 2023), sampled by short-run "
                    f"Langevin over all layers at once. Redraw one layer given the others to see what it controls.")
        with gr.Row():
            seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
            num_samples = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="Number of samples")
        with gr.Tab("Redraw one layer"):
            layer = gr.Radio(layer_choices(num_layers), value=num_layers, label="Layer to redraw", elem_id="layer")
            gr.Button("Sample and redraw", variant="primary", elem_id="resample-button").click(
                resample, [seed, num_samples, layer],
                [gr.Gallery(label="Samples", columns=8, height=240, elem_id="samples"),
                 gr.Gallery(label="The same samples with the chosen layer redrawn", columns=8, height=240,
                            elem_id="redrawn")],
                api_name="resample")
        with gr.Tab("All layers"):
            gr.Button("Sweep", elem_id="sweep-button").click(
                sweep, [seed, num_samples],
                gr.Image(type="pil", label="Top row: samples; each row below: one layer redrawn, the top first",
                         elem_id="sweep"), api_name="sweep")
    return demo


if __name__ == "__main__":
    build_demo().launch()
