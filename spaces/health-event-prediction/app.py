"""Gradio Space: health event prediction with Chet (Lu, Han & Ning, AAAI 2022) from a patient's visits of ICD-9
diagnosis codes: the codes of the next visit with their scores, the heart-failure probability and decision, and which
of the patient's codes drove a prediction (occlusion, with each code's weight in the disease graph).

The models are local folders or Hub ids given by CHET_DIAGNOSIS_MODEL and CHET_HEART_FAILURE_MODEL; by default the
bundled models/diagnosis and models/heart_failure beside this file (trained on synthetic patients by build_models.py),
so the Space starts offline.
"""

import json
import os
import re
from pathlib import Path

import datasets
import gradio as gr
import pandas as pd
import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the model types)
from hf_latent_ebm.chet import ChetForHealthEventPrediction
from hf_latent_ebm.chet.explain import code_attributions
from hf_latent_ebm.chet.icd9_names import icd9_name
from hf_latent_ebm.data.icd9 import dotted_icd9, icd9_chapter

HERE = Path(__file__).parent
DEFAULT_MODELS = {"diagnosis": HERE / "models" / "diagnosis", "heart_failure": HERE / "models" / "heart_failure"}
MODEL_VARIABLES = {"diagnosis": "CHET_DIAGNOSIS_MODEL", "heart_failure": "CHET_HEART_FAILURE_MODEL"}
EXAMPLES_FILE = HERE / "examples.json"
# Bounds on pasted input, so one request cannot occupy the Space; real admissions have at most 39 codes in MIMIC-III.
MAX_VISITS, MAX_CODES_PER_VISIT, MAX_TOP_K = 40, 60, 30
HEART_FAILURE = "heart failure"  # the explain target that means the heart-failure probability
PREDICTION_COLUMNS = ["rank", "code", "score", "in the input", "name"]
CODE_COLUMNS = ["visit", "code", "name", "known to the model"]
ATTRIBUTION_COLUMNS = ["code", "name", "visits", "score drop without it", "graph neighbour of the target",
                       "A[code → target]", "A[target → code]"]


def load_model(path, task: str) -> ChetForHealthEventPrediction:
    # AutoModel reads config.json's model_type, so another kind of model folder is refused rather than loaded as
    # random Chet weights.
    model = AutoModel.from_pretrained(path).eval()
    if not isinstance(model, ChetForHealthEventPrediction) or model.config.task != task:
        raise ValueError(f"{path} does not hold a Chet model for task {task!r}")
    return model


def normalise_code(token: str) -> str:
    """A dotted ICD-9 code from a dotted or undotted one ("4280", "428.0" -> "428.0"); a ValueError otherwise."""
    dotted = dotted_icd9(token.strip().upper())
    icd9_chapter(dotted)  # a code outside every ICD-9-CM chapter is not a diagnosis code
    return dotted


def parse_visits(text: str | None) -> list[list[str]]:
    """One visit per non-empty line, codes separated by spaces, commas or semicolons, each visit's codes distinct."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise gr.Error("type the patient's visits, one per line, as ICD-9 codes separated by spaces or commas "
                       "(e.g. 428.0 427.31 401.9), or pick an example patient")
    if len(lines) > MAX_VISITS:
        raise gr.Error(f"{len(lines)} visits: at most {MAX_VISITS} are taken")
    visits = []
    for number, line in enumerate(lines, start=1):
        tokens = [token for token in re.split(r"[\s,;]+", line.strip()) if token]
        if len(tokens) > MAX_CODES_PER_VISIT:
            raise gr.Error(f"visit {number} has {len(tokens)} codes: at most {MAX_CODES_PER_VISIT} are taken")
        codes = []
        for token in tokens:
            try:
                codes.append(normalise_code(token))
            except ValueError as error:
                raise gr.Error(f"visit {number} ({line.strip()[:80]!r}): {token[:20]!r} is not an ICD-9 diagnosis "
                               f"code ({error})") from None
        visits.append(list(dict.fromkeys(codes)))
    return visits


def known_visits(model, visits: list[list[str]]) -> list[list[str]]:
    """The visits restricted to the model's vocabulary, visits left empty dropped; an error when nothing is left."""
    vocabulary = set(model.config.code_names)
    kept = [known for visit in visits if (known := [code for code in visit if code in vocabulary])]
    if not kept:
        raise gr.Error(f"none of the codes is known to the {model.config.task.replace('_', '-')} model (its "
                       f"vocabulary has {model.config.num_codes} codes, e.g. {', '.join(model.config.code_names[:3])})")
    return kept


def next_visit_scores(model, visits: list[list[str]]) -> torch.Tensor:
    """The model's scores for the visit after `visits` (codes of its vocabulary): [num_codes] or a 0-d probability."""
    scores, _ = model.predict(datasets.Dataset.from_dict({"patient_id": [0], "visits": [visits]}))
    return scores[0]


def example_label(example: dict) -> str:
    after = "heart failure coded at the next visit" if example["heart_failure_next"] else "no heart failure next"
    return f"patient {example['patient_id']}: {len(example['visits'])} visits ({after})"


def build_demo(diagnosis_model: str | os.PathLike | None = None,
               heart_failure_model: str | os.PathLike | None = None) -> gr.Blocks:
    paths = {"diagnosis": diagnosis_model, "heart_failure": heart_failure_model}
    models = {task: load_model(path or os.environ.get(MODEL_VARIABLES[task], DEFAULT_MODELS[task]), task)
              for task, path in paths.items()}
    diagnosis, heart_failure = models["diagnosis"], models["heart_failure"]
    examples = json.loads(EXAMPLES_FILE.read_text()) if EXAMPLES_FILE.exists() else []
    by_label = {example_label(example): example for example in examples}

    def input_table(visits: list[list[str]]) -> tuple[pd.DataFrame, str]:
        """Each input code with its name and whether the models know it; and a note on what was left out."""
        vocabularies = {task: set(model.config.code_names) for task, model in models.items()}
        rows, unknown = [], []
        for number, visit in enumerate(visits, start=1):
            for code in visit:
                known = [task for task, vocabulary in vocabularies.items() if code in vocabulary]
                status = ("yes" if len(known) == 2 else f"{known[0].replace('_', '-')} model only" if known
                          else "NO: unknown to the models, left out")
                if not known:
                    unknown.append(code)
                rows.append([number, code, icd9_name(code), status])
        empty = [str(number) for number, visit in enumerate(visits, start=1)
                 if not any(code in vocabularies["diagnosis"] for code in visit)]
        if unknown:
            note = (f"**Left out, unknown to the models ({len(unknown)} of the {len(rows)} codes):** "
                    f"{', '.join(sorted(set(unknown)))}.")
            if empty:
                note += f" Visit(s) {', '.join(empty)} had no known code and were left out as a whole."
        else:
            note = f"All {len(rows)} codes are in the models' vocabulary ({diagnosis.config.num_codes} codes)."
        return pd.DataFrame(rows, columns=CODE_COLUMNS), note

    def predict(text: str, top_k: float):
        visits = parse_visits(text)
        scores = next_visit_scores(diagnosis, known_visits(diagnosis, visits))
        top = torch.topk(scores, min(int(top_k), diagnosis.config.num_codes))
        given = {code for visit in visits for code in visit}
        names = diagnosis.config.code_names
        predictions = pd.DataFrame(
            [[rank, names[index], round(score, 3), "yes" if names[index] in given else "no", icd9_name(names[index])]
             for rank, (score, index) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1)],
            columns=PREDICTION_COLUMNS)
        probability = float(next_visit_scores(heart_failure, known_visits(heart_failure, visits)))
        flagged = bool(heart_failure.decide(torch.tensor([probability]))[0])
        threshold = heart_failure.decision_threshold
        source = ("chosen on the validation patients for F1 when the model was trained"
                  if heart_failure.config.decision_threshold is not None else "the default: none stored")
        verdict = (f"**Heart failure at the next visit: probability {probability:.3f}** → "
                   f"{'**flagged**' if flagged else 'not flagged'} (the model's threshold is {threshold:.3f}, "
                   f"{source}).")
        codes, note = input_table(visits)
        return predictions, verdict, codes, note

    def explain(text: str, target: str | None):
        visits = parse_visits(text)
        if not target:
            raise gr.Error("predict first, then pick a predicted code (or heart failure) to explain")
        if target == HEART_FAILURE:
            model, code, what = heart_failure, None, "The heart-failure probability"
        else:
            try:
                code = normalise_code(target)
            except ValueError:
                raise gr.Error(f"{target[:20]!r} is not an ICD-9 code; pick a predicted code or heart failure") \
                    from None
            if code not in diagnosis.config.code_names:
                raise gr.Error(f"{code} is not in the diagnosis model's vocabulary, so it is never predicted")
            model, what = diagnosis, f"The score of {code} ({icd9_name(code)})"
        visits = known_visits(model, visits)
        rows = code_attributions(model, visits, code)

        def weight(value):
            return None if value is None else round(value, 4)

        def linked(row):
            return "—" if code is None else "itself" if row.code == code else "yes" if row.is_neighbour else "no"

        table = pd.DataFrame(
            [[row.code, icd9_name(row.code), ", ".join(str(visit + 1) for visit in row.visits),
              None if row.score_drop is None else round(row.score_drop, 4), linked(row),
              weight(row.weight_to_target), weight(row.weight_from_target)] for row in rows],
            columns=ATTRIBUTION_COLUMNS)
        score = next_visit_scores(model, visits)
        full = float(score if code is None else score[model.config.code_names.index(code)])
        summary = (f"{what} on the full input: **{full:.3f}**. Each row takes one code out of every visit and scores "
                   "the patient again: a positive drop means the code raised the prediction, a negative one that it "
                   "lowered it.")
        if code is not None:
            summary += (" A[i → j] is the disease graph's weight: the share of code i's co-occurrences (in the "
                        "training visits) that are with code j; a code linked to the target either way is its "
                        "graph neighbour.")
        return table, summary

    def fill_example(label: str | None):
        if label not in by_label:
            raise gr.Error(f"pick one of the {len(by_label)} example patients")
        example = by_label[label]
        actual = ", ".join(f"{code} ({icd9_name(code)})" for code in example["next_visit"])
        return ("\n".join(" ".join(visit) for visit in example["visits"]),
                f"This synthetic test patient's actual next visit (hidden from the model): {actual}")

    def explain_choices(predictions):
        # The explain dropdown offers the codes just predicted, best first, and heart failure.
        codes = [] if predictions is None or len(predictions) == 0 else list(predictions["code"])
        labels = [(f"{code} · {icd9_name(code)}", code) for code in codes] + [(HEART_FAILURE, HEART_FAILURE)]
        return gr.Dropdown(choices=labels, value=labels[0][1])

    first = next(iter(by_label), None)
    with gr.Blocks(title="Chet: health event prediction") as demo:
        gr.Markdown("# Health event prediction with Chet\nChet (Lu, Han & Ning, AAAI 2022) reads a patient's visits "
                    "as ICD-9 diagnosis codes over a disease co-occurrence graph and predicts the next visit. The "
                    "bundled models are small and trained on **synthetic** patients: a demonstration, not medical "
                    "advice.")
        with gr.Row():
            with gr.Column():
                example = gr.Dropdown(list(by_label), value=first, label="Example patient (synthetic, unseen in "
                                      "training)", elem_id="example")
                visits = gr.Textbox(value=fill_example(first)[0] if first else "", lines=6, max_lines=MAX_VISITS,
                                    label="Visits: one per line, oldest first; ICD-9 codes separated by spaces or "
                                          "commas (dotted or not)", placeholder="428.0 427.31 401.9\n4280 5849",
                                    elem_id="visits")
                actual = gr.Markdown(fill_example(first)[1] if first else "", elem_id="actual")
                top_k = gr.Slider(1, MAX_TOP_K, value=10, step=1, label="Predicted codes shown (top k)")
                predict_button = gr.Button("Predict", variant="primary", elem_id="predict-button")
            with gr.Column():
                verdict = gr.Markdown(elem_id="heart-failure")
                # The names last and widest, so the scores stay in view in a half-width column.
                predictions = gr.Dataframe(headers=PREDICTION_COLUMNS, label="Predicted codes of the next visit",
                                           interactive=False, wrap=True, max_height=800, elem_id="predictions",
                                           column_widths=["9%", "15%", "14%", "11%", "51%"])
        with gr.Accordion("The input codes", open=True):
            note = gr.Markdown(elem_id="note")
            codes = gr.Dataframe(headers=CODE_COLUMNS, label="Input codes", interactive=False, wrap=True,
                                 elem_id="codes")
        gr.Markdown("## Which codes drove a prediction")
        with gr.Row():
            target = gr.Dropdown([(HEART_FAILURE, HEART_FAILURE)], value=None, allow_custom_value=True,
                                 label="Prediction to explain (predict first)", elem_id="target")
            explain_button = gr.Button("Explain", elem_id="explain-button")
        summary = gr.Markdown(elem_id="summary")
        attributions = gr.Dataframe(headers=ATTRIBUTION_COLUMNS, label="Each input code's effect on the prediction",
                                    interactive=False, wrap=True, max_height=800, elem_id="attributions")

        example.change(fill_example, example, [visits, actual], api_visibility="private")
        predict_button.click(predict, [visits, top_k], [predictions, verdict, codes, note],
                             api_name="predict").success(explain_choices, predictions, target,
                                                         api_visibility="private")
        explain_button.click(explain, [visits, target], [attributions, summary], api_name="explain")
    return demo


if __name__ == "__main__":
    build_demo().launch()
