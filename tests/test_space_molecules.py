"""The molecule-design Space (issue 35, item 6) on its bundled model, driven through gradio_client and a real browser:
generated molecules drawn with their validity and uniqueness, a few SGDS design rounds on a copy of the model, and
requests out of bounds."""

import json

import numpy as np
import pytest
from PIL import Image

from .test_spaces import launched  # noqa: F401  (a fixture)
from .test_spaces import SPACES, api_parameters, browser_page, load_app, save_screenshot

pytest.importorskip("rdkit", reason="RDKit is the molecules extra: pip install 'hf-latent-ebm[molecules]'")

SPACE = SPACES / "molecule-design"


def rows(table) -> list[list]:
    return table["data"] if isinstance(table, dict) else table


def test_the_space_generates_and_designs_and_bounds_requests(launched):  # noqa: F811
    from gradio_client import Client

    client = Client(launched("molecule-design"), verbose=False)
    assert api_parameters(client) == {"/generate": ["seed", "num_molecules", "temperature"],
                                      "/design": ["property_name", "rounds", "population", "seed"]}
    image, stats, table = client.predict(0, 16, 0.7, api_name="/generate")
    valid = rows(table)
    assert "Validity" in stats and "uniqueness" in stats
    assert valid and Image.open(image).size[0] >= 240  # at least one molecule, drawn 240 px wide
    assert len(valid) <= 16 and all(0 <= row[1] <= 1 for row in valid)  # QED is in [0, 1]
    # The same seed gives the same molecules, drawn the same.
    again, again_stats, again_table = client.predict(0, 16, 0.7, api_name="/generate")
    assert again_stats == stats and rows(again_table) == valid
    assert np.array_equal(np.asarray(Image.open(image)), np.asarray(Image.open(again)))

    best, plot, history, summary = client.predict("qed", 2, 32, 0, api_name="/design")
    history = rows(history)
    assert [row[0] for row in history] == [0, 1, 2]
    # The population keeps the best of old and new, so none of the three best values ever falls.
    for column in (1, 2, 3):
        values = [row[column] for row in history]
        assert values == sorted(values), (column, history)
    assert all(row[1] >= row[2] >= row[3] for row in history)
    assert Image.open(best).size[0] >= 4 * 240 and Image.open(plot).size[0] > 100 and "QED" in summary
    # Design refits a copy: the Space's model, and so what Generate gives, is unchanged.
    assert client.predict(0, 16, 0.7, api_name="/generate")[1:] == (stats, table)

    with pytest.raises(Exception, match="greater than maximum value 32"):
        client.predict(0, 1000, 1.0, api_name="/generate")
    with pytest.raises(Exception, match="less than minimum value 0.1"):
        client.predict(0, 4, 0.0, api_name="/generate")
    with pytest.raises(Exception, match="greater than maximum value 5"):
        client.predict("qed", 50, 32, 0, api_name="/design")
    with pytest.raises(Exception, match="less than minimum value 32"):
        client.predict("qed", 1, 4, 0, api_name="/design")
    with pytest.raises(Exception):
        client.predict("toxicity", 1, 32, 0, api_name="/design")  # not a property the model predicts
    client.close()


def test_out_of_range_values_from_the_functions_are_clear_errors():
    app = load_app("molecule-design")
    assert app.check_integer("rounds", 3.0, 1, 5) == 3
    for value, message in ((2.5, "whole number"), (float("nan"), "whole number"), (None, "whole number"),
                           (0, "must be in 1..5"), (6, "must be in 1..5")):
        with pytest.raises(app.gr.Error, match=message):
            app.check_integer("rounds", value, 1, 5)


def test_the_property_picker_says_which_way_design_pushes():
    choices = load_app("molecule-design").property_choices(["qed", "penalized_logp", "sa"])
    assert choices == [("QED (drug-likeness), higher", "qed"), ("penalized logP, higher", "penalized_logp"),
                       ("SA score (synthetic accessibility), lower", "sa")]


def test_a_model_without_a_property_head_is_refused_with_a_clear_error(tmp_path):
    import torch

    from hf_latent_ebm import LatentEBMForMoleculeGeneration, LatentEBMMoleculeConfig
    from hf_latent_ebm.tokenization import train_tokenizer

    smiles = (SPACE / "seed_molecules.smi").read_text().split()
    tokenizer = train_tokenizer(smiles, kind="smiles", min_frequency=1, max_length=80)
    torch.manual_seed(0)
    model = LatentEBMForMoleculeGeneration(LatentEBMMoleculeConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, unk_token_id=tokenizer.unk_token_id, latent_dim=4,
        decoder_config={"embedding_dim": 8, "hidden_dim": 8}))
    model.set_tokenizer(tokenizer)
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="property head"):
        load_app("molecule-design").build_demo(tmp_path)


def test_the_space_in_a_real_browser(launched, tmp_path):  # noqa: F811
    url = launched("molecule-design")
    with browser_page(url) as (page, browser):
        page.get_by_role("button", name="Generate").click()
        page.locator("#molecules img").first.wait_for(state="visible", timeout=60_000)
        page.locator("#generate-stats").get_by_text("Validity").wait_for(state="visible", timeout=60_000)
        stats = page.locator("#generate-stats").inner_text()
        screenshot = save_screenshot(page, tmp_path, "molecule_space_after_generate.png")
        browser.close()
    assert "uniqueness" in stats
    assert screenshot.stat().st_size > 10_000


def test_the_bundled_model_and_seed_molecules():
    from transformers import AutoConfig, AutoModel

    from hf_latent_ebm.data.molecules import canonical_smiles

    config = AutoConfig.from_pretrained(SPACE / "default_model")
    assert config.model_type == "latent_ebm_molecule" and config.representation == "selfies"
    assert config.property_names == ["qed", "penalized_logp", "sa"]
    files = {path.name for path in (SPACE / "default_model").iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "train_results.json", "tokenizer.json"} <= files
    assert "checkpoints" not in files and (SPACE / "default_model" / "README.md").read_text().strip()
    assert json.loads((SPACE / "default_model" / "train_results.json").read_text())
    seeds = (SPACE / "seed_molecules.smi").read_text().split()
    assert len(seeds) == 128 and all(canonical_smiles(text) for text in seeds)
    # Every bundled start molecule is one the bundled model's tokenizer can read, so design can start from all.
    model = AutoModel.from_pretrained(SPACE / "default_model")
    assert len(load_app("molecule-design").read_seed_molecules(model)) == 128
