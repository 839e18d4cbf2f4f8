"""The Gradio Spaces, driven through gradio_client and, for the image Space, a real browser."""

import contextlib
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SPACES = Path(__file__).resolve().parents[1] / "spaces"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

gradio = pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[test]')")


def load_app(name: str):
    spec = importlib.util.spec_from_file_location(f"space_{name.replace('-', '_')}", SPACES / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def launched(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demos = []

    def launch(name: str, **build_kwargs):
        demo = load_app(name).build_demo(**build_kwargs)
        _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        return url

    yield launch
    for demo in demos:
        demo.close()


def api_parameters(client) -> dict[str, list[str]]:
    """Each named endpoint's parameter names as an API caller sees them (`param_1`.. when a function takes *args)."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    return {name: [parameter["parameter_name"] for parameter in info["parameters"]]
            for name, info in endpoints.items()}


def gallery_labels(client) -> dict[str, list[str]]:
    """Each named endpoint's output labels, as the API (and the page) shows them."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    return {name: [output["label"] for output in info["returns"]] for name, info in endpoints.items()}


@contextlib.contextmanager
def browser_page(url: str):
    """A page of Debian's chromium (Playwright's own browser download does not work offline) open at `url`."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"BROWSER TEST NOT RUN: no chromium at {CHROMIUM} (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="BROWSER TEST NOT RUN: pip install playwright")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        yield page, browser


def test_space_readmes_have_gradio_front_matter():
    from huggingface_hub import RepoCard

    for name in ("image-generation", "text-generation", "digit-classification", "hierarchical-generation",
                 "molecule-design"):
        data = RepoCard.load(SPACES / name / "README.md").data
        assert data.sdk == "gradio" and str(data.sdk_version).startswith("6.")
        assert data.python_version and data.app_file == "app.py"
        assert (SPACES / name / "requirements.txt").exists()


def test_image_space_samples_reconstructs_and_bounds_requests(launched, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(launched("image-generation"), verbose=False)
    assert api_parameters(client) == {"/sample": ["seed", "num_samples", "steps", "step_size"],
                                      "/reconstruct": ["image", "seed"]}
    assert gallery_labels(client)["/sample"] == ["Samples from the prior, one per tile, 8 per row (28x28 shown at "
                                                 "112x112)"]
    gallery = client.predict(3, 4, 10, 0.4, api_name="/sample")
    assert len(gallery) == 4 and all(Path(item["image"]).exists() for item in gallery)
    again = client.predict(3, 4, 10, 0.4, api_name="/sample")
    assert np.array_equal(np.asarray(Image.open(gallery[0]["image"])), np.asarray(Image.open(again[0]["image"])))
    digit = tmp_path / "digit.png"
    Image.fromarray(np.pad(np.full((12, 4), 255, np.uint8), ((8, 8), (12, 12)))).save(digit)
    reconstruction, score = client.predict(handle_file(str(digit)), 0, api_name="/reconstruct")
    assert Image.open(reconstruction).size == (112, 112)
    assert float(score.split()[0]) > 0
    with pytest.raises(Exception, match="greater than maximum value 64"):
        client.predict(0, 100_000, 10, 0.4, api_name="/sample")
    with pytest.raises(Exception, match="greater than maximum value 200"):
        client.predict(0, 4, 10**6, 0.4, api_name="/sample")
    client.close()


def test_text_space_generates_and_interpolates(launched):
    from gradio_client import Client

    client = Client(launched("text-generation"), verbose=False)
    assert api_parameters(client) == {"/generate": ["seed", "temperature", "num_sentences"],
                                      "/interpolate": ["first", "second", "num_steps", "seed"]}
    sentences = client.predict(1, 0.8, 3, api_name="/generate")
    assert len([line for line in sentences.splitlines() if line.strip()]) == 3
    assert sentences == client.predict(1, 0.8, 3, api_name="/generate")
    # The bundled model's word vocabulary has <unk>; generation never emits it, even at a high temperature.
    many = client.predict(2, 1.5, 32, api_name="/generate")
    assert len(many.splitlines()) == 32 and "<unk>" not in many
    path = client.predict("and god said let there be light", "and the lord spake unto moses", 4, 0,
                          api_name="/interpolate")
    assert len(path.splitlines()) == 4
    with pytest.raises(Exception, match="greater than maximum value 32"):
        client.predict(1, 0.8, 10_000, api_name="/generate")
    with pytest.raises(Exception, match="less than minimum value 0.05"):
        client.predict(1, 0.0, 3, api_name="/generate")
    client.close()


def save_screenshot(page, tmp_path, name: str) -> Path:
    """The whole page as `name`, in $LEBM_SCREENSHOT_DIR when set (to keep it), else in the test's tmp_path."""
    screenshot = Path(os.environ.get("LEBM_SCREENSHOT_DIR", tmp_path)) / name
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    return screenshot


def test_image_space_in_a_real_browser(launched, tmp_path):
    url = launched("image-generation")
    with browser_page(url) as (page, browser):
        page.get_by_role("button", name="Sample").click()
        page.locator("#gallery img").first.wait_for(state="visible", timeout=60_000)
        count = page.locator("#gallery img").count()
        screenshot = save_screenshot(page, tmp_path, "image_space_after_sample.png")
        browser.close()
    assert count >= 16  # the default number of samples
    assert screenshot.stat().st_size > 10_000


def test_digit_space_classifies_and_samples_each_class(launched):
    from gradio_client import Client, handle_file

    client = Client(launched("digit-classification"), verbose=False)
    assert api_parameters(client) == {"/classify": ["image"], "/sample": ["label", "num_samples", "seed"]}
    assert gallery_labels(client)["/sample"] == ["Samples of the chosen class, 8 per row (28x28 shown at 112x112)"]
    examples = SPACES / "digit-classification" / "examples"
    correct = 0
    for digit in range(10):
        result = client.predict(handle_file(str(examples / f"digit_{digit}.png")), api_name="/classify")
        confidences = {item["label"]: item["confidence"] for item in result["confidences"]}
        assert len(confidences) == 10 and abs(sum(confidences.values()) - 1) < 1e-4
        correct += result["label"] == str(digit)
    assert correct >= 8, correct  # the bundled model, trained with 100 labels, on ten test digits
    gallery = client.predict("3", 4, 0, api_name="/sample")
    assert len(gallery) == 4 and Image.open(gallery[0]["image"]).size == (112, 112)
    with pytest.raises(Exception, match="greater than maximum value 32"):
        client.predict("3", 1000, 0, api_name="/sample")
    client.close()


def test_digit_space_in_a_real_browser(launched):
    url = launched("digit-classification")
    with browser_page(url) as (page, browser):
        page.locator("#digit input[type=file]").set_input_files(
            str(SPACES / "digit-classification" / "examples" / "digit_7.png"))
        page.get_by_role("button", name="Classify").click()
        page.locator("#probabilities").get_by_text("7").first.wait_for(state="visible", timeout=60_000)
        text = page.locator("#probabilities").inner_text()
        page.get_by_role("tab", name="Class-conditional samples").click()
        page.get_by_role("button", name="Sample").click()
        page.locator("#gallery img").first.wait_for(state="visible", timeout=60_000)
        count = page.locator("#gallery img").count()
        browser.close()
    assert "%" in text and count >= 8
