"""Gradio Space: multimodal latent-EBM models (one latent shared by several modalities). Pick or upload one modality
and generate the others from it (cross-modal), or draw every modality jointly from the energy-based prior.

Every model folder under LEBM_MULTIMODAL_MODELS (a folder of model folders, each saved with `save_pretrained`, and
with its tokenizer when it has text) gets a tab; by default the models bundled in models/ beside this file, so the
Space starts offline. Example inputs for a tab are read from examples/<model folder>/: `<modality>_<what>.png`
images and `<modality>.txt` files of one caption a line.
"""

import os
import re
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the model type)
from hf_latent_ebm import LatentEBMForMultimodalGeneration

HERE = Path(__file__).parent
DEFAULT_MODELS = HERE / "models"
EXAMPLES = HERE / "examples"
MAX_DRAWS, DEFAULT_DRAWS = 8, 4
MAX_JOINT_SAMPLES, DEFAULT_JOINT_SAMPLES = 16, 8
MAX_SEED = 2**31 - 1
MAX_TEXT_CHARS = 300  # far above any caption a text modality holds; its token limit is checked by the model
DISPLAY_SCALE = 4  # generated images are shown (and returned) enlarged 4x by pixel replication


def load_models(models_dir: str | os.PathLike) -> dict[str, LatentEBMForMultimodalGeneration]:
    """Every model folder (one with a config.json) directly under `models_dir`, by folder name, in name order."""
    models_dir = Path(models_dir)
    folders = sorted(path for path in models_dir.iterdir() if (path / "config.json").is_file()) \
        if models_dir.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"no model folders (with a config.json) under {models_dir}: set "
                                "LEBM_MULTIMODAL_MODELS to a folder of multimodal model folders")
    models = {}
    for folder in folders:
        model = AutoModel.from_pretrained(folder).eval()
        if not isinstance(model, LatentEBMForMultimodalGeneration):
            raise ValueError(f"{folder} holds a {type(model).__name__}, not a multimodal latent-EBM model")
        if "text" in model.config.kinds.values() and model.tokenizer is None:
            raise ValueError(f"{folder} has a text modality but no tokenizer: save it after model.set_tokenizer(...)")
        models[folder.name] = model
    return models


def prepare_image(image: Image.Image, shape: tuple[int, int, int]) -> tuple[np.ndarray, str]:
    """An uploaded image as the modality takes it, (H, W) or (H, W, C) uint8, and a note of each step applied:
    transparency flattened onto black (the datasets' background), conversion to the modality's channel count,
    bilinear resizing to its size. The note is shown beside the outputs, so no change to the input is silent."""
    channels, height, width = shape
    steps = []
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        opaque = "L" if image.mode == "LA" else "RGB"
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert(opaque)
        steps.append(f"transparent pixels flattened onto black ({image.mode}A to {image.mode})" if opaque == "L"
                     else "transparent pixels flattened onto black")
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        steps.append(f"converted from {image.mode} to {mode} ({channels} channel{'s' if channels > 1 else ''})")
        image = image.convert(mode)
    if image.size != (width, height):
        kept = image.size[0] * height == image.size[1] * width
        steps.append(f"resized from {image.size[0]}x{image.size[1]} to {width}x{height} (bilinear"
                     f"{'' if kept else ', aspect ratio not kept'})")
        image = image.resize((width, height), Image.BILINEAR)
    note = "; ".join(steps) if steps else f"already {width}x{height} {mode}, used as is"
    return np.asarray(image, dtype=np.uint8), note


def prepare_text(text: str | None, name: str, tokenizer) -> tuple[str, str]:
    """A typed caption, stripped, and a note naming the words the tokenizer does not know (read as <unk>)."""
    text = (text or "").strip()
    if not text:
        raise gr.Error(f"type a text for {name!r} first (or pick an example)")
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"the text for {name!r} has {len(text)} characters; at most {MAX_TEXT_CHARS} are taken")
    encoding = tokenizer(text, return_offsets_mapping=True)
    unknown = [text[start:end] for token, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"])
               if token == tokenizer.unk_token_id and end > start]
    note = (f"words the model's vocabulary lacks, read as <unk>: {', '.join(map(repr, unknown))}" if unknown
            else "every word is in the model's vocabulary")
    return text, note


def enlarge(images: torch.Tensor) -> list[Image.Image]:
    """uint8 images (N, C, H, W) as PIL images enlarged DISPLAY_SCALE times by pixel replication."""
    arrays = images.permute(0, 2, 3, 1).numpy()
    pils = [Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array) for array in arrays]
    return [pil.resize((pil.width * DISPLAY_SCALE, pil.height * DISPLAY_SCALE), Image.NEAREST) for pil in pils]


def text_lines(texts: dict[str, list[str]]) -> str:
    """One line per generated text; prefixed with its modality's name where the model has several."""
    return "\n".join(f"{name}: {text}" if len(texts) > 1 else text for name, values in texts.items()
                     for text in values) if texts else ""


def examples_for(name: str, model: LatentEBMForMultimodalGeneration) -> tuple[list[list], list[str]]:
    """The examples of a model tab: [given modality, image path, text] rows (the columns of the tab's inputs)."""
    folder = EXAMPLES / name
    kinds = model.config.kinds
    has_image, has_text = "image" in kinds.values(), "text" in kinds.values()
    rows, labels = [], []
    for path in sorted(folder.glob("*.png")):
        modality = path.stem.split("_", 1)[0]
        if kinds.get(modality) == "image":
            rows.append([modality, str(path)] + ([None] if has_text else []))
            labels.append(f"{modality}: {path.stem.split('_', 1)[-1].replace('-', ' ')}")
    for path in sorted(folder.glob("*.txt")):
        if kinds.get(path.stem) == "text":
            for line in filter(None, map(str.strip, path.read_text().splitlines())):
                rows.append([path.stem] + ([None] if has_image else []) + [line])
                labels.append(f"{path.stem}: {line}")
    return rows, labels


def model_tab(name: str, model: LatentEBMForMultimodalGeneration) -> None:
    """The tab of one model: given modality, its input, seed and draws -> the other modalities; joint samples."""
    names, kinds = list(model.modality_names), model.config.kinds
    image_names = [n for n in names if kinds[n] == "image"]
    text_names = [n for n in names if kinds[n] == "text"]
    shapes = {n: tuple(model.decoder.decoders[n].image_shape) for n in image_names}
    slug = re.sub(r"\W", "_", name)
    described = ", ".join(f"`{n}` ({'x'.join(map(str, shapes[n]))} image)" if kinds[n] == "image" else f"`{n}` (text)"
                          for n in names)

    def image_label(given: str) -> str:
        if kinds[given] != "image":
            return "Given image"
        channels, height, width = shapes[given]
        return (f"Given image ({given}: {width}x{height}, {channels} channel{'s' if channels > 1 else ''}; "
                "other sizes and modes are converted)")

    def input_visibility(given: str):
        if given not in kinds:
            raise gr.Error(f"pick a modality among {names}")
        updates = [gr.Image(visible=kinds[given] == "image", label=image_label(given))] if image_names else []
        if text_names:
            updates.append(gr.Textbox(visible=kinds[given] == "text", label=f"Given text ({given})"))
        return updates[0] if len(updates) == 1 else updates  # one output component takes a value, not a list

    def draw_columns(draws: float):
        return gr.Gallery(columns=int(draws))

    def cross_modal(given: str, image: Image.Image | None, text: str | None, seed: float | None, draws: float):
        if given not in kinds:
            raise gr.Error(f"pick the given modality among {names}")
        if seed is None:
            raise gr.Error("enter a seed")
        seed, draws = int(seed), int(draws)
        if kinds[given] == "image":
            if image is None:
                raise gr.Error(f"upload or pick an image for {given!r} first")
            value, note = prepare_image(image, shapes[given])
        else:
            value, note = prepare_text(text, given, model.tokenizer)
        targets = [n for n in names if n != given]
        generated = {n: [] for n in targets}
        for draw in range(draws):
            try:
                output = model.generate(conditioned_on={given: [value]}, targets=targets,
                                        generator=torch.Generator().manual_seed(seed + draw))
            except ValueError as error:
                raise gr.Error(str(error)) from error
            for n in targets:
                generated[n].append(output[n])
        gallery = [(pil, f"{n} · seed {seed + draw}") for n in targets if kinds[n] == "image"
                   for draw, pil in enumerate(enlarge(torch.cat(generated[n])))]
        texts = {n: [drawn[0] for drawn in generated[n]] for n in targets if kinds[n] == "text"}
        outputs = [gallery] if image_names else []
        outputs += [text_lines(texts)] if text_names else []
        return outputs + [f"**{given}**: {note}. Draws use seeds {seed}..{seed + draws - 1}."]

    # The API's parameters are named after the endpoint function's, so each input layout gets its own signature.
    if image_names and text_names:
        def generate(given: str, image: Image.Image | None, text: str | None, seed: float | None, draws: float):
            return cross_modal(given, image, text, seed, draws)
    elif image_names:
        def generate(given: str, image: Image.Image | None, seed: float | None, draws: float):
            return cross_modal(given, image, None, seed, draws)
    else:
        def generate(given: str, text: str | None, seed: float | None, draws: float):
            return cross_modal(given, None, text, seed, draws)

    def joint(seed: float | None, num_samples: float):
        if seed is None:
            raise gr.Error("enter a seed")
        num_samples = int(num_samples)
        try:
            output = model.generate(num_samples=num_samples, generator=torch.Generator().manual_seed(int(seed)))
        except ValueError as error:
            raise gr.Error(str(error)) from error
        enlarged = {n: enlarge(output[n]) for n in image_names}
        gallery = []
        for index in range(num_samples):
            words = " / ".join(output[n][index] for n in text_names)
            for n in image_names:
                gallery.append((enlarged[n][index], f"#{index + 1} {n}" + (f": {words}" if words else "")))
        outputs = ([gallery] if image_names else []) + ([text_lines({n: output[n] for n in text_names})]
                                                         if text_names else [])
        return outputs[0] if len(outputs) == 1 else outputs  # a single output takes the value itself

    with gr.Tab(name, elem_id=f"{name}-tab"):
        how = ("each draw's z comes from the model's posterior given that modality (Langevin from its encoder's "
               "draw)" if model.config.cross_modal_sampling == "posterior" else "the given modality's encoder draws z")
        gr.Markdown(f"Modalities: {described}. One latent z is shared by all of them: {how}, and the decoders "
                    "generate the others from it.")
        with gr.Row():
            with gr.Column():
                given = gr.Dropdown(names, value=names[0], label="Given modality", elem_id=f"{name}-given")
                inputs = []
                if image_names:
                    inputs.append(gr.Image(type="pil", image_mode=None, sources=["upload", "clipboard"],
                                           visible=kinds[names[0]] == "image", elem_id=f"{name}-image",
                                           label=image_label(names[0]), height=224))
                if text_names:
                    inputs.append(gr.Textbox(label=f"Given text ({text_names[0]})", max_lines=2,
                                             placeholder="a handwritten seven", elem_id=f"{name}-text",
                                             visible=kinds[names[0]] == "text"))
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                     elem_id=f"{name}-seed")
                    draws = gr.Slider(1, MAX_DRAWS, value=DEFAULT_DRAWS, step=1,
                                      label="Draws (seeds seed, seed+1, ...)", elem_id=f"{name}-draws")
                generate_button = gr.Button("Generate", variant="primary", elem_id=f"{name}-generate")
            with gr.Column():
                outputs = []
                if image_names:
                    outputs.append(gr.Gallery(label="Generated images: a row per generated image modality, a "
                                                    f"column per draw (captioned modality · seed; shown "
                                                    f"{DISPLAY_SCALE}x enlarged)", columns=DEFAULT_DRAWS,
                                              format="png", elem_id=f"{name}-gallery", interactive=False))
                if text_names:
                    outputs.append(gr.Textbox(label="Generated text (a line per draw)", lines=4,
                                              elem_id=f"{name}-captions", interactive=False))
                note = gr.Markdown(label="How the input was read", show_label=False, elem_id=f"{name}-note")
        given.change(input_visibility, given, inputs, api_visibility="private")
        if image_names:  # a row per generated image modality, a column per draw, as the gallery's label says
            draws.change(draw_columns, draws, outputs[0], api_visibility="private")
        generate_button.click(generate, [given, *inputs, seed, draws], [*outputs, note],
                              api_name=f"generate_{slug}")
        rows, labels = examples_for(name, model)
        if rows:
            gr.Examples(rows, [given, *inputs], example_labels=labels, label="Examples (click one, then Generate)",
                        examples_per_page=12, elem_id=f"{name}-examples")
        gr.Markdown("### Joint samples\nEvery modality decoded from the same z, drawn from the energy-based prior "
                    "by short-run Langevin.")
        with gr.Row():
            num_samples = gr.Slider(1, MAX_JOINT_SAMPLES, value=DEFAULT_JOINT_SAMPLES, step=1,
                                    label="Number of samples", elem_id=f"{name}-samples")
            joint_button = gr.Button("Joint sample", elem_id=f"{name}-joint")
        joint_outputs = []
        if len(image_names) > 1:
            joint_outputs.append(gr.Gallery(label=f"Joint samples: a row per sample, a column per image modality "
                                                  f"({', '.join(image_names)}; shown {DISPLAY_SCALE}x enlarged)",
                                            format="png", columns=len(image_names),
                                            elem_id=f"{name}-joint-gallery", interactive=False))
        elif image_names:
            drawn_with = f", captioned with the {' / '.join(text_names)} drawn with it" if text_names else ""
            joint_outputs.append(gr.Gallery(label=f"Joint samples: {DEFAULT_DRAWS} per row, numbered (each "
                                                  f"{image_names[0]}{drawn_with}; shown {DISPLAY_SCALE}x enlarged)",
                                            format="png", columns=DEFAULT_DRAWS,
                                            elem_id=f"{name}-joint-gallery", interactive=False))
        if text_names:
            joint_outputs.append(gr.Textbox(label="Joint samples' text (a line per sample)", lines=4,
                                            elem_id=f"{name}-joint-captions", interactive=False))
        joint_button.click(joint, [seed, num_samples], joint_outputs, api_name=f"joint_{slug}")


def build_demo(models_dir: str | os.PathLike | None = None) -> gr.Blocks:
    models = load_models(models_dir or os.environ.get("LEBM_MULTIMODAL_MODELS", DEFAULT_MODELS))
    # The sliders' and the seed's bounds are enforced by Gradio on the server too, for API callers as well.
    with gr.Blocks(title="Latent EBM: multimodal generation") as demo:
        gr.Markdown("# Multimodal generation with a latent-space EBM prior\nPick or upload one modality and "
                    "generate the others from it, or sample all of them jointly from the prior (Yuan et al., "
                    "ECCV 2024).")
        for name, model in models.items():
            model_tab(name, model)
    return demo


if __name__ == "__main__":
    build_demo().launch()
