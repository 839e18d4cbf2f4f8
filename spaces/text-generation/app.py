"""Gradio Space: sample sentences from a latent-EBM prior text model and interpolate between two sentences.

The model is a local folder or Hub id given by LEBM_TEXT_MODEL (saved with its tokenizer); by default the bundled
small KJV model beside this file, so the Space starts offline.
"""

import os
from pathlib import Path

import gradio as gr
import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the model type)

DEFAULT_MODEL = Path(__file__).parent / "default_model"
MAX_SENTENCES, MAX_INTERPOLATION_STEPS, MAX_TEMPERATURE = 32, 12, 3.0


def build_demo(model_path: str | os.PathLike | None = None) -> gr.Blocks:
    model = AutoModel.from_pretrained(model_path or os.environ.get("LEBM_TEXT_MODEL", DEFAULT_MODEL)).eval()

    def generate(seed: float, temperature: float, num_sentences: float) -> str:
        generator = torch.Generator().manual_seed(int(seed))
        return "\n".join(model.generate_text(int(num_sentences), generator, temperature=float(temperature)))

    def interpolate(first: str, second: str, num_steps: float, seed: float) -> str:
        if not first.strip() or not second.strip():
            raise gr.Error("enter two non-empty sentences")
        generator = torch.Generator().manual_seed(int(seed))
        return "\n".join(model.interpolate(first, second, int(num_steps), generator))

    # The sliders' bounds are enforced by Gradio on the server too, so API callers cannot exceed them either.
    with gr.Blocks(title="Latent EBM prior: text generation") as demo:
        gr.Markdown("# Latent-space EBM prior for text\nA latent sampled by short-run Langevin from the energy-based "
                    "prior, then decoded token by token.")
        with gr.Tab("Sample"):
            with gr.Row():
                seed = gr.Number(value=0, precision=0, label="Seed")
                temperature = gr.Slider(0.05, MAX_TEMPERATURE, value=0.8, step=0.05, label="Temperature")
                num_sentences = gr.Slider(1, MAX_SENTENCES, value=5, step=1, label="Number of sentences")
            sentences = gr.Textbox(label="Sentences", lines=8, elem_id="sentences")
            gr.Button("Sample", variant="primary").click(generate, [seed, temperature, num_sentences], sentences,
                                                         api_name="generate")
        with gr.Tab("Interpolate"):
            first = gr.Textbox(label="First sentence", value="and god said let there be light")
            second = gr.Textbox(label="Second sentence", value="and the lord spake unto moses")
            num_steps = gr.Slider(2, MAX_INTERPOLATION_STEPS, value=5, step=1, label="Steps")
            path = gr.Textbox(label="Greedy decodings along the line between their posterior latents", lines=8)
            gr.Button("Interpolate").click(interpolate, [first, second, num_steps, seed], path,
                                           api_name="interpolate")
    return demo


if __name__ == "__main__":
    build_demo().launch()
