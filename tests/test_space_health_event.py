"""The health-event-prediction Space on its bundled Chet models, driven through gradio_client and a real browser."""

import json
import re

import pytest

from hf_latent_ebm.chet.icd9_names import icd9_name

from .test_spaces import launched  # noqa: F401  (a fixture)
from .test_spaces import SPACES, api_parameters, browser_page, load_app, save_screenshot

SPACE = SPACES / "health-event-prediction"
MODELS = SPACE / "models"
EXAMPLES = json.loads((SPACE / "examples.json").read_text())


def as_text(visits: list[list[str]]) -> str:
    return "\n".join(" ".join(visit) for visit in visits)


@pytest.fixture
def client(launched):  # noqa: F811
    from gradio_client import Client

    client = Client(launched("health-event-prediction"), verbose=False)  # build_demo(): the bundled models
    yield client
    client.close()


def test_front_matter_bundle_and_api(client):
    from huggingface_hub import RepoCard

    data = RepoCard.load(SPACE / "README.md").data
    assert data.sdk == "gradio" and str(data.sdk_version).startswith("6.")
    assert data.python_version and data.app_file == "app.py"
    assert (SPACE / "requirements.txt").exists()
    for task in ("diagnosis", "heart_failure"):
        config = json.loads((MODELS / task / "config.json").read_text())
        assert config["model_type"] == "chet" and config["task"] == task
        assert (MODELS / task / "model.safetensors").stat().st_size < 5_000_000  # a small bundle
    assert len(EXAMPLES) >= 4 and {example["heart_failure_next"] for example in EXAMPLES} == {True, False}
    assert api_parameters(client) == {"/predict": ["text", "top_k"], "/explain": ["text", "target"]}


def test_predicts_the_next_visit_and_heart_failure(client):
    example = EXAMPLES[0]
    predictions, verdict, codes, note = client.predict(as_text(example["visits"]), 12, api_name="/predict")
    assert predictions["headers"] == ["rank", "code", "score", "in the input", "name"]
    rows = predictions["data"]
    assert [row[0] for row in rows] == list(range(1, 13))
    assert all(row[4] == icd9_name(row[1]) and "no name bundled" not in row[4] for row in rows)
    scores = [row[2] for row in rows]
    assert all(0 < value < 1 for value in scores) and scores == sorted(scores, reverse=True)
    probability = float(re.search(r"probability ([0-9.]+)", verdict).group(1))
    assert 0 < probability < 1 and "threshold is 0." in verdict
    # Every input code is listed with its name, and all are known.
    assert [row[:2] for row in codes["data"]] == [[number, code] for number, visit in enumerate(example["visits"], 1)
                                                  for code in visit]
    assert all(row[3] == "yes" for row in codes["data"]) and note.startswith("All ")
    assert client.predict(as_text(example["visits"]), 12, api_name="/predict")[0] == predictions  # deterministic


def test_heart_failure_patients_score_higher(client):
    # The bundled heart-failure model tells the examples apart by the visit that followed (its test AUC is ~0.88).
    probabilities = {}
    for example in EXAMPLES:
        verdict = client.predict(as_text(example["visits"]), 1, api_name="/predict")[1]
        probabilities[example["patient_id"]] = float(re.search(r"probability ([0-9.]+)", verdict).group(1))
    positive = [probabilities[e["patient_id"]] for e in EXAMPLES if e["heart_failure_next"]]
    negative = [probabilities[e["patient_id"]] for e in EXAMPLES if not e["heart_failure_next"]]
    assert sum(positive) / len(positive) > sum(negative) / len(negative), probabilities


def test_unknown_codes_are_left_out_and_said(client):
    # Undotted codes, commas, a code outside the vocabulary (V70.0) and a visit holding only that code.
    text = "4280, 42731 4019\n\nV700\n5849 V700 428.0"
    predictions, _, codes, note = client.predict(text, 5, api_name="/predict")
    assert len(predictions["data"]) == 5
    assert [row[1] for row in codes["data"]] == ["428.0", "427.31", "401.9", "V70.0", "584.9", "V70.0", "428.0"]
    assert [row[3].startswith("NO") for row in codes["data"]] == [False] * 3 + [True, False, True, False]
    assert "V70.0" in note and "(2 of the 7 codes)" in note and "Visit(s) 2 had no known code" in note


def test_explains_a_prediction_by_occlusion(client):
    text = as_text(EXAMPLES[-1]["visits"])
    predictions = client.predict(text, 3, api_name="/predict")[0]
    target = predictions["data"][0][1]
    table, summary = client.predict(text, target, api_name="/explain")
    distinct = {code for visit in EXAMPLES[-1]["visits"] for code in visit}
    assert table["headers"][:5] == ["code", "name", "visits", "score drop without it", "graph neighbour of the target"]
    assert {row[0] for row in table["data"]} == distinct
    drops = [row[3] for row in table["data"]]
    assert drops == sorted(drops, reverse=True) and all(row[4] in ("yes", "no", "itself") for row in table["data"])
    assert any(row[4] == "yes" for row in table["data"])
    assert f"The score of {target}" in summary and f"{predictions['data'][0][2]:.3f}" in summary
    table, summary = client.predict(text, "heart failure", api_name="/explain")
    assert len(table["data"]) == len(distinct) and "heart-failure probability" in summary


def test_bad_inputs_are_errors(client):
    with pytest.raises(Exception, match="type the patient's visits"):
        client.predict("  \n ", 10, api_name="/predict")
    with pytest.raises(Exception, match=r"visit 2 .*'hello' is not an ICD-9 diagnosis code"):
        client.predict("428.0\n401.9 hello", 10, api_name="/predict")
    with pytest.raises(Exception, match="dot in the wrong place"):
        client.predict("42.80", 10, api_name="/predict")
    with pytest.raises(Exception, match="none of the codes is known to the diagnosis model"):
        client.predict("V70.0", 10, api_name="/predict")
    with pytest.raises(Exception, match="greater than maximum value 30"):
        client.predict("428.0", 1000, api_name="/predict")
    with pytest.raises(Exception, match="at most 40 are taken"):
        client.predict("428.0\n" * 41, 10, api_name="/predict")
    with pytest.raises(Exception, match="predict first"):
        client.predict("428.0", None, api_name="/explain")
    with pytest.raises(Exception, match="not an ICD-9 code"):
        client.predict("428.0", "lungs", api_name="/explain")


def test_env_variables_choose_the_models(monkeypatch):
    # A model for the other task is refused, not loaded as random weights.
    monkeypatch.setenv("CHET_DIAGNOSIS_MODEL", str(MODELS / "heart_failure"))
    with pytest.raises(ValueError, match="not hold a Chet model for task 'diagnosis'"):
        load_app("health-event-prediction").build_demo()


def test_space_in_a_real_browser(launched, tmp_path):  # noqa: F811
    url = launched("health-event-prediction")
    example = EXAMPLES[-1]
    label = f"patient {example['patient_id']}: "
    with browser_page(url) as (page, browser):
        page.locator("#example input").click()
        page.get_by_role("option", name=re.compile(re.escape(label))).click()
        text = page.locator("#visits textarea")
        page.wait_for_function("(code) => document.querySelector('#visits textarea').value.startsWith(code)",
                               arg=example["visits"][0][0], timeout=30_000)
        visits = text.input_value()
        page.locator("#predict-button").click()
        # The tables are virtualised (rows out of view are not rendered): count the rows by the grid's aria-rowcount.
        page.locator("#predictions [role=grid][aria-rowcount='11']").wait_for(timeout=60_000)  # header + top 10
        predictions = page.locator("#predictions").inner_text()
        verdict = page.locator("#heart-failure").inner_text()
        page.wait_for_function("() => document.querySelector('#target input').value !== ''", timeout=30_000)
        target = page.locator("#target input").input_value()
        page.locator("#explain-button").click()  # the dropdown now holds the top predicted code
        distinct = len({code for visit in example["visits"] for code in visit})
        page.locator(f"#attributions [role=grid][aria-rowcount='{distinct + 1}']").wait_for(timeout=60_000)
        attributions = page.locator("#attributions").inner_text()
        summary = page.locator("#summary").inner_text()
        screenshot = save_screenshot(page, tmp_path, "health_event_space_after_explain.png")
        browser.close()
    assert visits == as_text(example["visits"])
    assert "Heart failure at the next visit: probability" in verdict
    top_code = target.split(" · ")[0]
    assert top_code in predictions and icd9_name(top_code) in target
    assert f"The score of {top_code}" in summary and "score drop without it" in attributions
    assert screenshot.stat().st_size > 10_000
