"""The hierarchical-generation Space (issue 34, item 5) on its bundled model, driven through gradio_client and a real
browser: sampling, redrawing one chosen layer, the all-layers grid, and requests out of bounds."""

import numpy as np
import pytest
from PIL import Image

from .test_spaces import launched  # noqa: F401  (a fixture)
from .test_spaces import SPACES, api_parameters, browser_page, load_app, save_screenshot

SPACE = SPACES / "hierarchical-generation"


def pixels(gallery) -> list[np.ndarray]:
    return [np.asarray(Image.open(item["image"])) for item in gallery]


def test_the_space_redraws_the_chosen_layer_of_the_same_samples(launched):  # noqa: F811
    from gradio_client import Client

    client = Client(launched("hierarchical-generation"), verbose=False)
    assert api_parameters(client) == {"/resample": ["seed", "num_samples", "layer"], "/sweep": ["seed", "num_samples"]}
    samples, redrawn = client.predict(3, 4, 1, api_name="/resample")
    assert len(samples) == len(redrawn) == 4
    # The same seed gives the same samples whichever layer is redrawn; the redrawn images differ from them.
    top_samples, top_redrawn = client.predict(3, 4, 4, api_name="/resample")
    assert all(np.array_equal(a, b) for a, b in zip(pixels(samples), pixels(top_samples)))
    assert not all(np.array_equal(a, b) for a, b in zip(pixels(samples), pixels(redrawn)))
    sweep = Image.open(client.predict(0, 3, api_name="/sweep"))
    # One row of samples and one per layer (4 layers), 3 columns, each tile 28 px + 2 px padding, shown 3x.
    assert sweep.size == (3 * (3 * 30 + 2), 3 * (5 * 30 + 2))
    with pytest.raises(Exception, match="greater than maximum value 32"):
        client.predict(0, 1000, 1, api_name="/resample")
    with pytest.raises(Exception):
        client.predict(0, 2, 7, api_name="/resample")  # not one of the layer choices
    client.close()


def test_the_layer_picker_lists_the_layers_top_first():
    choices = load_app("hierarchical-generation").layer_choices(3)
    assert choices == [("layer 3 (top)", 3), ("layer 2", 2), ("layer 1 (bottom, next to the image)", 1)]


def test_a_model_without_layers_is_refused_with_a_clear_error(tmp_path):
    import torch

    from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration

    torch.manual_seed(0)
    LatentEBMForImageGeneration(LatentEBMConfig(latent_dim=4, decoder_config={"base_channels": 4})).save_pretrained(
        tmp_path)
    with pytest.raises(ValueError, match="layered prior"):
        load_app("hierarchical-generation").build_demo(tmp_path)


def test_the_space_in_a_real_browser(launched, tmp_path):  # noqa: F811
    url = launched("hierarchical-generation")
    with browser_page(url) as (page, browser):
        page.get_by_label("layer 1 (bottom, next to the image)").check()
        page.get_by_role("button", name="Sample and redraw").click()
        page.locator("#redrawn img").first.wait_for(state="visible", timeout=60_000)
        counts = page.locator("#samples img").count(), page.locator("#redrawn img").count()
        screenshot = save_screenshot(page, tmp_path, "hierarchical_space_after_redraw.png")
        browser.close()
    assert counts[0] >= 8 and counts[1] >= 8  # the default number of samples, in both galleries
    assert screenshot.stat().st_size > 10_000


def test_the_bundled_model_is_hierarchical_and_documented():
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(SPACE / "default_model")
    assert config.prior_type == "hierarchical" and len(config.part_config("prior").layer_sizes) == 4
    assert (SPACE / "default_model" / "README.md").read_text().strip()
