"""Gradio Space: classify a digit with a semi-supervised latent-EBM classifier (symbol-vector coupling, trained on
MNIST with 100 labels) and draw class-conditional samples from its coupling prior.

The model is a local folder or Hub id given by LEBM_CLASSIFIER_MODEL; by default the bundled model beside this file,
so the Space starts offline.
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

HERE = Path(__file__).parent
DEFAULT_MODEL = HERE / "default_model"
EXAMPLES = sorted(str(path) for path in (HERE / "examples").glob("*.png"))
MAX_SAMPLES = 32


def build_demo(model_path: str | os.PathLike | None = None) -> gr.Blocks:
    model = AutoModel.from_pretrained(model_path or os.environ.get("LEBM_CLASSIFIER_MODEL", DEFAULT_MODEL)).eval()
    size = model.decoder.image_shape[1]
    mode = "L" if model.decoder.image_shape[0] == 1 else "RGB"
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def classify(image: Image.Image | None) -> dict[str, float]:
        if image is None:
            raise gr.Error("upload or pick a digit first")
        array = np.asarray(image.convert(mode).resize((size, size), Image.BILINEAR), dtype=np.float32)
        pixels = torch.from_numpy(array / 127.5 - 1).reshape(1, size, size, -1).permute(0, 3, 1, 2)
        probabilities = model.predict_proba(pixels, torch.Generator().manual_seed(0))[0]
        return {name: float(p) for name, p in zip(names, probabilities)}

    def sample(label: str, num_samples: float, seed: float) -> list[Image.Image]:
        if label not in names:
            raise gr.Error(f"pick a class among {names}")
        generator = torch.Generator().manual_seed(int(seed))
        images = model.sample(int(num_samples), generator, labels=[names.index(label)] * int(num_samples))
        return [image.resize((112, 112), Image.NEAREST) for image in to_pil(images)]

    # Gradio enforces the sliders' and the dropdown's bounds on the server too, for API callers as well.
    with gr.Blocks(title="Latent EBM: semi-supervised digit classification") as demo:
        gr.Markdown("# Semi-supervised classification with a latent-space EBM\nThe prior couples the latent with "
                    "the class, p(y, z) ∝ exp(f_y(z)) p0(z); the same f classifies (Pang et al. 2020).")
        with gr.Tab("Classify"):
            with gr.Row():
                image = gr.Image(type="pil", label="Digit", image_mode=None, elem_id="digit")
                probabilities = gr.Label(num_top_classes=len(names), label="Class probabilities",
                                         elem_id="probabilities")
            gr.Button("Classify", variant="primary", elem_id="classify-button").click(
                classify, image, probabilities, api_name="classify")
            if EXAMPLES:
                gr.Examples(EXAMPLES, image)
        with gr.Tab("Class-conditional samples"):
            with gr.Row():
                label = gr.Dropdown(names, value=names[0], label="Class")
                num_samples = gr.Slider(1, MAX_SAMPLES, value=8, step=1, label="Number of samples")
                seed = gr.Number(value=0, precision=0, label="Seed")
            gallery = gr.Gallery(label=f"Samples of the chosen class, 8 per row ({size}x{size} shown at 112x112)",
                                 columns=8, elem_id="gallery")
            gr.Button("Sample", elem_id="sample-button").click(sample, [label, num_samples, seed], gallery,
                                                                  api_name="sample")
    return demo


if __name__ == "__main__":
    build_demo().launch()
