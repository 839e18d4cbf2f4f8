"""The multimodal-generation Space, on tiny untrained models with the bundled models' modality names, driven through
gradio_client and a real browser."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from .test_spaces import launched  # noqa: F401  (a fixture)
from .test_spaces import SPACES, api_parameters, browser_page, gallery_labels, load_app, save_screenshot

SPACE = SPACES / "multimodal-generation"
TINY = dict(latent_dim=4, energy_hidden_dim=8, sampler_config={"prior_steps": 3, "posterior_steps": 2})
MAX_LENGTH = 12  # tokens with <bos>/<eos>; the templated captions have at most 8 words


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """Untrained tiny models named and shaped like the bundled ones: mnist-captions (image 1x28x28 + caption) and
    polymnist (m0..m4, 3x28x28)."""
    from hf_latent_ebm import LatentEBMForMultimodalGeneration, LatentEBMMultimodalConfig, image_modality, \
        text_modality
    from hf_latent_ebm.data.multimodal import CAPTION_LABEL_NAMES, CAPTION_TEMPLATES, caption_for
    from hf_latent_ebm.tokenization import train_tokenizer

    root = tmp_path_factory.mktemp("multimodal") / "models"
    captions = [caption_for(label, index) for label in range(len(CAPTION_LABEL_NAMES))
                for index in range(len(CAPTION_TEMPLATES["digit" if label < 10 else "fashion"]))]
    tokenizer = train_tokenizer(captions, kind="word", min_frequency=1, max_length=MAX_LENGTH)  # as the bundled one
    torch.manual_seed(0)
    captions_model = LatentEBMForMultimodalGeneration(LatentEBMMultimodalConfig(**TINY, modalities={
        "image": image_modality(num_channels=1, base_channels=4),
        "caption": text_modality(tokenizer, max_length=MAX_LENGTH, embedding_dim=8, hidden_dim=8)}))
    captions_model.set_tokenizer(tokenizer)
    captions_model.save_pretrained(root / "mnist-captions")
    polymnist = LatentEBMForMultimodalGeneration(LatentEBMMultimodalConfig(**TINY, modalities={
        f"m{index}": image_modality(num_channels=3, base_channels=4) for index in range(5)}))
    polymnist.save_pretrained(root / "polymnist")
    return root


@pytest.fixture
def client(launched, models_dir):  # noqa: F811
    from gradio_client import Client

    client = Client(launched("multimodal-generation", models_dir=models_dir), verbose=False)
    yield client
    client.close()


def image_files(gallery) -> list[Image.Image]:
    assert isinstance(gallery, list)
    return [Image.open(item["image"]) for item in gallery]


def test_space_front_matter_examples_and_api(client, models_dir):
    from huggingface_hub import RepoCard

    data = RepoCard.load(SPACE / "README.md").data
    assert data.sdk == "gradio" and str(data.sdk_version).startswith("6.")
    assert data.python_version and data.app_file == "app.py"
    assert (SPACE / "requirements.txt").exists()
    # Each bundled model has image examples, and the caption model caption examples.
    assert len(list((SPACE / "examples" / "polymnist").glob("m*_*.png"))) >= 5
    assert len(list((SPACE / "examples" / "mnist-captions").glob("image_*.png"))) >= 3
    assert len((SPACE / "examples" / "mnist-captions" / "caption.txt").read_text().split("\n")) >= 3
    # Every endpoint's parameters are named (they were param_1.. where the function took *args).
    assert api_parameters(client) == {
        "/generate_mnist_captions": ["given", "image", "text", "seed", "draws"],
        "/joint_mnist_captions": ["seed", "num_samples"],
        "/generate_polymnist": ["given", "image", "seed", "draws"],
        "/joint_polymnist": ["seed", "num_samples"]}
    labels = gallery_labels(client)
    assert labels["/generate_polymnist"] == ["Generated images: a row per generated image modality, a column per "
                                             "draw (captioned modality · seed; shown 4x enlarged)",
                                             "How the input was read"]
    assert labels["/joint_polymnist"] == ["Joint samples: a row per sample, a column per image modality (m0, m1, "
                                          "m2, m3, m4; shown 4x enlarged)"]
    # One image modality: the joint gallery shows several samples a row, and says so.
    assert labels["/joint_mnist_captions"][0] == ("Joint samples: 4 per row, numbered (each image, captioned with "
                                                  "the caption drawn with it; shown 4x enlarged)")


def test_image_to_caption_and_caption_to_image(client):
    from gradio_client import handle_file

    digit = str(SPACE / "examples" / "mnist-captions" / "image_digit-7.png")
    gallery, captions, note = client.predict("image", handle_file(digit), None, 3, 4,
                                             api_name="/generate_mnist_captions")
    assert gallery == []  # the caption model has no other image modality
    lines = captions.splitlines()
    assert len(lines) == 4 and all(isinstance(line, str) for line in lines)
    assert "used as is" in note and "seeds 3..6" in note
    assert captions == client.predict("image", handle_file(digit), None, 3, 4,
                                      api_name="/generate_mnist_captions")[1]

    gallery, captions, note = client.predict("caption", None, "a handwritten seven", 0, 3,
                                             api_name="/generate_mnist_captions")
    images = image_files(gallery)
    assert captions == "" and len(images) == 3
    assert all(image.size == (112, 112) and image.mode == "L" for image in images)  # 28x28, shown 4x enlarged
    assert [item["caption"] for item in gallery] == ["image · seed 0", "image · seed 1", "image · seed 2"]
    assert "every word is in the model's vocabulary" in note
    _, _, note = client.predict("caption", None, "a handwritten zebra", 0, 1, api_name="/generate_mnist_captions")
    assert "'zebra'" in note


def test_one_polymnist_modality_to_the_other_four(client, tmp_path):
    from gradio_client import handle_file

    given = str(SPACE / "examples" / "polymnist" / "m2_digit-1.png")
    gallery, note = client.predict("m2", handle_file(given), 5, 4, api_name="/generate_polymnist")
    images = image_files(gallery)
    assert len(images) == 16 and all(image.size == (112, 112) and image.mode == "RGB" for image in images)
    names = [item["caption"].split(" · ")[0] for item in gallery]
    assert names == [name for name in ("m0", "m1", "m3", "m4") for _ in range(4)]  # a row per modality
    # Draw k uses seed + k whatever the number of draws: the first draw of seed 5 is draw 0 of 4 above.
    again = image_files(client.predict("m2", handle_file(given), 5, 1, api_name="/generate_polymnist")[0])
    assert np.array_equal(np.asarray(again[0]), np.asarray(images[0]))

    # Another size and channel count is converted, and the note says how.
    upload = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48, 4), dtype=np.uint8), "RGBA").save(upload)
    gallery, note = client.predict("m0", handle_file(str(upload)), 0, 2, api_name="/generate_polymnist")
    assert len(gallery) == 8
    assert "flattened onto black" in note and "converted from RGBA to RGB" not in note
    assert "resized from 48x64 to 28x28" in note and "aspect ratio not kept" in note
    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(grey)
    note = client.predict("m4", handle_file(str(grey)), 0, 1, api_name="/generate_polymnist")[1]
    assert "converted from L to RGB (3 channels)" in note and "resized" not in note


def test_joint_samples(client):
    gallery = client.predict(1, 3, api_name="/joint_polymnist")
    images = image_files(gallery)
    assert len(images) == 15 and all(image.size == (112, 112) for image in images)
    assert [item["caption"] for item in gallery[:5]] == [f"#1 m{index}" for index in range(5)]
    gallery, captions = client.predict(2, 4, api_name="/joint_mnist_captions")
    assert len(image_files(gallery)) == 4 and len(captions.splitlines()) == 4
    # Each image is shown with the caption generated with it from the same latent.
    assert [item["caption"] for item in gallery] == [f"#{i + 1} image: {line}"
                                                      for i, line in enumerate(captions.splitlines())]
    assert (gallery, captions) != client.predict(3, 4, api_name="/joint_mnist_captions")
    # The parameters can be passed by name, as the README shows.
    assert captions == client.predict(seed=2, num_samples=4, api_name="/joint_mnist_captions")[1]
    named = client.predict(given="caption", image=None, text="a handwritten seven", seed=0, draws=2,
                           api_name="/generate_mnist_captions")
    assert len(named[0]) == 2 and "seeds 0..1" in named[2]


def test_bad_inputs_are_errors(client):
    from gradio_client import handle_file

    with pytest.raises(Exception, match="type a text for 'caption' first"):
        client.predict("caption", None, "   ", 0, 4, api_name="/generate_mnist_captions")
    with pytest.raises(Exception, match="more than its max_length 12"):
        client.predict("caption", None, " ".join(["a handwritten seven"] * 5), 0, 4,
                       api_name="/generate_mnist_captions")
    with pytest.raises(Exception, match="at most 300 are taken"):
        client.predict("caption", None, "seven " * 100, 0, 4, api_name="/generate_mnist_captions")
    with pytest.raises(Exception, match="upload or pick an image for 'image' first"):
        client.predict("image", None, "a handwritten seven", 0, 4, api_name="/generate_mnist_captions")
    with pytest.raises(Exception, match="upload or pick an image for 'm1' first"):
        client.predict("m1", None, 0, 4, api_name="/generate_polymnist")
    given = handle_file(str(SPACE / "examples" / "polymnist" / "m0_digit-7.png"))
    with pytest.raises(Exception, match="greater than maximum value 8"):
        client.predict("m0", given, 0, 100, api_name="/generate_polymnist")
    with pytest.raises(Exception, match="less than minimum value 0"):
        client.predict("m0", given, -1, 2, api_name="/generate_polymnist")
    with pytest.raises(Exception, match="greater than maximum value 16"):
        client.predict(0, 1000, api_name="/joint_polymnist")
    with pytest.raises(Exception, match="m7"):
        client.predict("m7", given, 0, 2, api_name="/generate_polymnist")


def test_space_in_a_real_browser(launched, models_dir, tmp_path):  # noqa: F811
    url = launched("multimodal-generation", models_dir=models_dir)
    with browser_page(url) as (page, browser):
        # Caption -> image: a caption example picks the "caption" modality, which shows the text box.
        page.locator("#mnist-captions-image").wait_for(state="visible", timeout=30_000)
        assert not page.locator("#mnist-captions-text").is_visible()
        page.locator("#mnist-captions-examples").get_by_text("caption: a photo of a sneaker").click()
        text = page.locator("#mnist-captions-text textarea")
        text.wait_for(state="visible", timeout=30_000)
        assert not page.locator("#mnist-captions-image").is_visible()
        assert text.input_value() == "a photo of a sneaker"
        text.fill("a handwritten seven")  # typing works as well
        page.locator("#mnist-captions-generate").click()
        page.locator("#mnist-captions-gallery img").first.wait_for(state="visible", timeout=60_000)
        caption_images = page.locator("#mnist-captions-gallery img").count()
        # Choosing "image" in the dropdown brings the image input back.
        page.locator("#mnist-captions-given input").click()
        page.get_by_role("option", name="image").click()
        page.locator("#mnist-captions-image").wait_for(state="visible", timeout=30_000)
        image_label = page.locator("#mnist-captions-image").inner_text()
        # PolyMNIST: click an example (it sets the given modality and the image), generate the other four.
        page.get_by_role("tab", name="polymnist").click()
        page.locator("#polymnist-examples").get_by_text("m3: digit 0").click()
        page.locator("#polymnist-image img").first.wait_for(state="visible", timeout=30_000)
        page.locator("#polymnist-generate").click()
        page.locator("#polymnist-gallery img").nth(15).wait_for(state="visible", timeout=60_000)
        note = page.locator("#polymnist-note").inner_text()
        polymnist_images = page.locator("#polymnist-gallery img").count()
        screenshot = save_screenshot(page, tmp_path, "multimodal_space_after_generate.png")
        browser.close()
    assert caption_images >= 4  # the default draws
    assert "28x28, 1 channel" in image_label
    assert polymnist_images >= 16 and "m3" in note
    assert screenshot.stat().st_size > 10_000


def test_bundled_models_load_by_default(launched, monkeypatch):  # noqa: F811
    from gradio_client import Client, handle_file

    bundled = SPACE / "models"
    if not any(bundled.glob("*/config.json")):
        pytest.skip(f"no bundled models under {bundled} yet")
    monkeypatch.delenv("LEBM_MULTIMODAL_MODELS", raising=False)
    app = load_app("multimodal-generation")
    models = app.load_models(app.DEFAULT_MODELS)
    assert {"mnist-captions", "polymnist"} <= set(models)
    assert models["mnist-captions"].config.kinds == {"image": "image", "caption": "text"}
    assert tuple(models["mnist-captions"].decoder.decoders["image"].image_shape) == (1, 28, 28)
    assert models["polymnist"].modality_names == ("m0", "m1", "m2", "m3", "m4")
    client = Client(launched("multimodal-generation"), verbose=False)  # build_demo() with no argument
    examples = SPACE / "examples"
    for line in (examples / "mnist-captions" / "caption.txt").read_text().splitlines():  # all fit the model
        assert len(client.predict("caption", None, line, 0, 1, api_name="/generate_mnist_captions")[0]) == 1
    captions = client.predict("image", handle_file(str(examples / "mnist-captions" / "image_digit-7.png")), None,
                              0, 2, api_name="/generate_mnist_captions")[1]
    assert len(captions.splitlines()) == 2
    gallery = client.predict("m0", handle_file(str(examples / "polymnist" / "m0_digit-7.png")), 0, 1,
                             api_name="/generate_polymnist")[0]
    assert len(gallery) == 4
    client.close()


def test_missing_models_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folders"):
        load_app("multimodal-generation").build_demo(models_dir=tmp_path)
