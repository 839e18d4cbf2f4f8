"""Model cards and Hub pushes.

Each model kind (`hf_latent_ebm.model_kinds`) names its Jinja template (in `hf_latent_ebm/model_cards/`, which the
top-level `model_cards/` links to, or a path of its own), its pipeline tag and its card tags when it registers.
"""

import json
import os
from pathlib import Path

from .model_kinds import MODEL_KINDS, model_kind
from .priors import PRIORS

# Metrics the scripts and `hf-latent-ebm evaluate` write, with their model-index names.
KNOWN_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "fid": "FID", "mse": "reconstruction MSE", "auprc": "anomaly AUPRC", "ppl": "perplexity",
                 "joint_coherence": "joint coherence", "cross_coherence": "cross-modal coherence",
                 "nll": "NLL", "forward_ppl": "forward perplexity", "reverse_ppl": "reverse perplexity",
                 "active_units": "active units", "bleu": "reconstruction BLEU",
                 "weighted_f1": "weighted F1 (top-|y|)", "recall_at_10": "recall@10", "recall_at_20": "recall@20",
                 "auc": "ROC-AUC", "pr_auc": "PR-AUC", "f1": "F1 (at the stored threshold)",
                 "f1_at_0.5": "F1 at 0.5"}
UPLOAD_IGNORE = ["checkpoints/*", ".*", "**/.*"]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def collect_results(folder: Path) -> list[dict]:
    """Metric values found in the folder's *results*.json files (as the evaluate CLI writes them)."""
    results = []
    for path in sorted(folder.glob("*results*.json")):
        record = _read_json(path)
        for key, name in KNOWN_METRICS.items():
            if isinstance(record.get(key), (int, float)):
                results.append({"key": key, "name": name, "value": round(float(record[key]), 4),
                                "dataset": record.get("dataset", "unknown"), "split": record.get("split"),
                                "source": path.name})
    return results


def render_model_card(folder: str | Path, repo_id: str | None = None, license: str = "apache-2.0") -> str:
    """The README.md text for a saved model folder (config.json, and whatever results and samples sit beside it)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    folder = Path(folder)
    config = _read_json(folder / "config.json")
    model_type = config.get("model_type")
    if model_type not in MODEL_KINDS:
        raise ValueError(f"{folder} holds no hf-latent-ebm model (config.json model_type {model_type!r}; "
                         f"known: {sorted(MODEL_KINDS)})")
    kind = model_kind(model_type)
    # The typed settings of the parts, as loading reads them (old flat files converted).
    typed = kind.config_class.from_dict(config)
    parts = {name: typed.part_config(name) for name in ("prior", "sampler")} if hasattr(typed, "part_config") else {}
    if hasattr(typed, "part_arguments"):  # the decoder's settings as a dict (a user's decoder may have no class)
        prior_class = PRIORS.get(typed.prior_type)
        parts.update(decoder=typed.part_arguments("decoder"), prior_has_energy=prior_class.has_energy,
                     prior_description=prior_class.describe(parts["prior"], parts["sampler"]))
    train_results = _read_json(folder / "train_results.json")
    results = collect_results(folder)
    datasets = sorted({r["dataset"] for r in results if r["dataset"] != "unknown"} |
                      ({train_results["dataset"]} if train_results.get("dataset") else set()))
    repo_id = repo_id or folder.resolve().name
    pipeline_tag = kind.pipeline_tag_for(config)
    eval_results = [EvalResult(task_type=pipeline_tag or "other", dataset_type=r["dataset"],
                               dataset_name=r["dataset"], dataset_split=r["split"], metric_type=r["key"],
                               metric_name=r["name"], metric_value=r["value"]) for r in results]
    card_data = ModelCardData(
        library_name="hf-latent-ebm", license=license, pipeline_tag=pipeline_tag,
        tags=list(kind.tags), datasets=datasets or None,
        metrics=sorted({r["key"] for r in results}) or None, model_name=repo_id,
        eval_results=eval_results or None)
    # A text model's sentences or a molecule model's SMILES, one per line.
    samples_txt = next((folder / name for name in ("samples.txt", "samples.smi") if (folder / name).exists()), None)
    card = ModelCard.from_template(
        card_data, template_path=str(kind.template_path), model_name=repo_id,
        repo_id=repo_id, config=config, **parts, results=results, datasets=datasets,
        training_command=train_results.get("command"),
        train_results={k: v for k, v in train_results.items() if k not in ("command", "dataset")},
        sample_image="samples.png" if (folder / "samples.png").exists() else None,
        sample_texts=samples_txt.read_text().splitlines()[:8] if samples_txt else None)
    return str(card)


def write_model_card(folder: str | Path, repo_id: str | None = None) -> Path:
    """Render and write folder/README.md (atomically: a temp file, then a rename)."""
    path = Path(folder) / "README.md"
    text = render_model_card(folder, repo_id)
    staging = path.with_name(".README.md.tmp")
    staging.write_text(text)
    os.replace(staging, path)
    return path


def push_folder(folder: str | Path, repo_id: str, private: bool = False, commit_message: str | None = None,
                token: str | None = None, api=None):
    """Create (or reuse) the Hub repo and upload a saved model folder with a fresh card; checkpoints stay local.

    `api` is an `HfApi`-like object (injected by tests); by default a real `HfApi(token=token)`."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise OSError(f"{folder} is not a saved model folder (no config.json)")
    write_model_card(folder, repo_id)
    api = api or HfApi(token=token)
    api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(folder), ignore_patterns=UPLOAD_IGNORE,
                             commit_message=commit_message or f"Upload {repo_id} with hf-latent-ebm")


__all__ = ["render_model_card", "write_model_card", "push_folder", "collect_results"]
