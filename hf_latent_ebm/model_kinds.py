"""Model kinds, each declared once: a head class and what the layers above it need to know of it.

A model kind is a head (a `PreTrainedModel` subclass with its `config_class`) plus its model card template, its Hub
pipeline tag and card tags, and the `hf-latent-ebm train` tasks that make one. Its samples are its own: the head's
`write_samples` and `sample_file_suffix`, which `hf-latent-ebm sample` and the card call. `register_model_kind`
records a kind and registers its config and head with `AutoConfig` / `AutoModel`; each modeling file calls it once
for each of its heads, and the hub and the CLI read `MODEL_KINDS` and `TASKS` instead of tables of their own.

This module imports nothing of the package: the heads register themselves here, and the layers above look them up.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent / "model_cards"
LATENT_EBM_TAGS = ("latent-ebm", "energy-based-model", "langevin", "hf-latent-ebm")


@dataclass(frozen=True)
class Task:
    """What `hf-latent-ebm train --task NAME` trains: a data loader, the model (the preset: a head's config defaults
    with the settings the data decides and the user's overrides) and its dataset. Every model writes its own
    samples (`write_samples`), so a task needs no sample writer. `register_task` (or `register_model_kind(...,
    tasks=...)`) adds one; several tasks may make one model kind (presets of it).

    Args:
        load_data: `load_data(args)`, the training data the arguments name.
        make_model: `make_model(args, config_kwargs, data)`, a fresh model of the preset with the user's
            `--config-overrides` (or the checkpoint of `args.init_from`).
        make_dataset: `make_dataset(args, model, data)`, a `datasets.Dataset` with the model's input columns, or
            a (training, validation) pair whose validation part (labelled rows with the same columns, or None) the
            trainer scores every `--eval-every` steps to keep the best checkpoint as the model.
        dataset_name: `dataset_name(args)`, the data's name for train_results.json and the model card.
        after_training: `after_training(args, model, train_data)`, optional: fits what needs the trained model
            (the ssl task's class priors) and returns entries for train_results.json; the model is saved again.
        model_type (`str`, *optional*): The `model_type` of the kind the task makes (for listings and checks).
        default_dataset (`str`, *optional*): `--dataset` when the user gives none.
        labelled_batches (`bool`, defaults to False): Add `--labelled-batch-size` labelled rows to every batch
            (semi-supervised tasks).
    """

    load_data: Callable
    make_model: Callable
    make_dataset: Callable
    dataset_name: Callable
    after_training: Callable | None = None
    model_type: str | None = None
    default_dataset: str | None = None
    labelled_batches: bool = False


@dataclass(frozen=True)
class ModelKind:
    """One registered model kind (see `register_model_kind`)."""

    model_class: type
    card_template: str | Path
    pipeline_tag: str | Callable[[dict], str | None] | None = None
    tags: tuple[str, ...] = LATENT_EBM_TAGS

    @property
    def config_class(self) -> type:
        return self.model_class.config_class

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def template_path(self) -> Path:
        """The card template: a file of `hf_latent_ebm/model_cards/`, or the absolute path given."""
        return TEMPLATE_DIR / self.card_template

    @property
    def sample_file_suffix(self) -> str | None:
        """What the head's `write_samples` writes (".png", ".txt", ...); None where it depends on the config."""
        suffix = getattr(self.model_class, "sample_file_suffix", None)
        return suffix if isinstance(suffix, str) else None

    @property
    def tasks(self) -> list[str]:
        """The registered `hf-latent-ebm train` tasks that make this kind."""
        return sorted(name for name, task in TASKS.items() if task.model_type == self.model_type)

    def pipeline_tag_for(self, config: dict) -> str | None:
        """The Hub pipeline tag of a saved model of this kind, from its config.json's dict."""
        return self.pipeline_tag(config) if callable(self.pipeline_tag) else self.pipeline_tag


MODEL_KINDS: dict[str, ModelKind] = {}
TASKS: dict[str, Task] = {}


def register_model_kind(model_class: type, card_template: str | Path = "model.md.jinja",
                        pipeline_tag: str | Callable[[dict], str | None] | None = None,
                        tags: tuple[str, ...] | list[str] = LATENT_EBM_TAGS,
                        tasks: dict[str, Task] | None = None) -> ModelKind:
    """
    Declare a model kind: register its config with `AutoConfig`, its head with `AutoModel`, and record what the
    card, the Hub and the CLI need. Registering the same head again replaces its record (a re-imported module);
    another head for a registered `model_type` is an error.

    Args:
        model_class (`type`): The head, a `PreTrainedModel` subclass whose `config_class` has a `model_type`.
        card_template (`str` or `Path`, defaults to "model.md.jinja"): Its Jinja card template, a file name in
            `hf_latent_ebm/model_cards/` or an absolute path (a kind outside the package brings its own). The
            template gets `config`, `results`, `datasets`, `training_command`, `train_results`, `sample_image`,
            `sample_texts`, `model_name` and `repo_id`.
        pipeline_tag (`str`, callable or None): The Hub pipeline tag, or a function of the saved config.json's dict
            returning it (a classifier's follows its decoder).
        tags (`tuple[str]`, defaults to the latent-EBM family's): The card's tags.
        tasks (`dict[str, Task]`, *optional*): `hf-latent-ebm train` tasks that make this kind, by `--task` name.
    """
    from transformers import AutoConfig, AutoModel

    config_class = getattr(model_class, "config_class", None)
    model_type = getattr(config_class, "model_type", None)
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"{getattr(model_class, '__name__', model_class)!r} needs a config_class with a model_type "
                         f"to be a model kind, got config_class {config_class!r}")
    known = MODEL_KINDS.get(model_type)
    if known is not None and _qualified_name(known.model_class) != _qualified_name(model_class):
        raise ValueError(f"model kind {model_type!r} is already registered to {known.model_class.__qualname__}")
    AutoConfig.register(model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    kind = ModelKind(model_class, card_template, pipeline_tag, tuple(tags))
    MODEL_KINDS[model_type] = kind
    for name, task in (tasks or {}).items():
        register_task(name, task if task.model_type else replace(task, model_type=model_type))
    return kind


def _qualified_name(cls: type) -> str:
    """Module and name: the same class from a re-imported module is the same kind."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_task(name: str, task: Task) -> Task:
    """Add an `hf-latent-ebm train --task NAME`. Registering the name again for the same model kind replaces the
    task (a re-imported module); for another kind it is an error."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a task name must be a non-empty string, got {name!r}")
    if not isinstance(task, Task):
        raise TypeError(f"task {name!r} must be a hf_latent_ebm.model_kinds.Task, got {type(task).__name__}")
    known = TASKS.get(name)
    if known is not None and known.model_type != task.model_type:
        raise ValueError(f"task {name!r} is already registered (for model type {known.model_type!r})")
    TASKS[name] = task
    return task


def model_kind(model_type: str | None) -> ModelKind:
    """The registered kind of `model_type`, or a ValueError naming the known ones."""
    if model_type not in MODEL_KINDS:
        raise ValueError(f"unknown model type {model_type!r}; registered model kinds: {', '.join(sorted(MODEL_KINDS))}")
    return MODEL_KINDS[model_type]


__all__ = ["ModelKind", "Task", "MODEL_KINDS", "TASKS", "register_model_kind", "register_task", "model_kind",
           "LATENT_EBM_TAGS", "TEMPLATE_DIR"]
