"""What every model of the library does with checkpoints, cards and the Hub, and the default weight init, whatever
its family."""

from pathlib import Path

from torch import nn
from transformers import initialization as init


def init_pytorch_default(module: nn.Module) -> None:
    """PyTorch's own default init of linear and recurrent layers, written with transformers' init functions so that
    loading a checkpoint never re-runs it."""
    if isinstance(module, nn.Linear):
        bound = 1 / module.in_features**0.5
        init.uniform_(module.weight, -bound, bound)
        if module.bias is not None:
            init.uniform_(module.bias, -bound, bound)
    elif isinstance(module, (nn.LSTM, nn.GRU)):
        bound = 1 / module.hidden_size**0.5
        for param in module.parameters():
            init.uniform_(param, -bound, bound)


def _int_fields(values: dict, prefix: str = "") -> dict[str, int]:
    """The integer settings of a config dict, nested ones (sub-configs, per-part kwargs) under dotted names."""
    found = {}
    for name, value in values.items():
        if isinstance(value, dict):
            found.update(_int_fields(value, f"{prefix}{name}."))
        elif isinstance(value, int) and not isinstance(value, bool):
            found[f"{prefix}{name}"] = value
    return found


def check_weight_shapes(model, checkpoint_files, state_dict: dict | None = None) -> None:
    """
    Raise a ValueError when a weight in the checkpoint (safetensors files, or a `state_dict`) has another shape than
    the same weight of `model`, which its config built. The message names the file, each such weight with both
    shapes, and the config fields whose values are the sizes that differ (the fields that do not fit the weights).
    A file that cannot be read is left to the loader, whose error names it.
    """
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    sources = [("the state_dict given", {name: tuple(value.shape) for name, value in state_dict.items()})] \
        if state_dict is not None else []
    for file in checkpoint_files:
        if str(file).endswith(".safetensors"):
            from safetensors import safe_open

            try:
                with safe_open(file, framework="pt") as weights:
                    sources.append((str(file), {name: tuple(weights.get_slice(name).get_shape())
                                                for name in weights.keys()}))
            except Exception:  # damaged: the loader's own error names the file
                continue
    config_fields = _int_fields(model.config.to_dict())
    for source, shapes in sources:
        mismatched = [(name, shape, expected[name]) for name, shape in shapes.items()
                      if name in expected and shape != expected[name]]
        if not mismatched:
            continue
        suspects = None
        for _, saved, built in mismatched:
            sizes = {b for s, b in zip(saved, built) if s != b} if len(saved) == len(built) else set(built)
            fields = {field for field, value in config_fields.items() if value in sizes}
            suspects = fields if suspects is None else (suspects & fields or suspects | fields)
        weights = "; ".join(f"{name} is {list(saved)} in the file, {list(built)} in the model the config builds"
                            for name, saved, built in mismatched[:5])
        more = f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else ""
        fields = ", ".join(f"{field}={config_fields[field]}" for field in sorted(suspects)) or "unknown"
        raise ValueError(f"the weights in {source} do not fit the config: {weights}{more}. The config field that "
                         f"does not match them: {fields}. Load them with the config.json saved beside them, or pass "
                         "ignore_mismatched_sizes=True to re-initialise the weights that differ")


class CardedModelMixin:
    """
    For a `PreTrainedModel`: loading errors that name the checkpoint, `save_pretrained` that also writes a model
    card (README.md, rendered from the saved folder by `hf_latent_ebm.hub`), and `push_to_hub` through the same
    folder. A model family that shows samples on its card implements `write_card_samples(save_directory)`.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`; every failure says which checkpoint. A config that fails its checks
        (an unknown part, a bad value) or weights whose shapes do not fit the config raise a ValueError naming the
        file and the field; a missing or damaged file an OSError."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except OSError:
            raise
        except ValueError as error:
            raise ValueError(f"could not load a {cls.__name__} from {str(pretrained_model_name_or_path)!r}: "
                             f"{error}") from error
        except Exception as error:  # safetensors/json errors on a damaged file: say which checkpoint and why.
            raise OSError(f"could not load a {cls.__name__} checkpoint from {pretrained_model_name_or_path!r}: "
                          f"{type(error).__name__}: {error}") from error

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, load_config, *args, **kwargs):
        # transformers' step that copies the checkpoint into the model built from the config. Checked first: weights
        # of another shape than the config builds are a ValueError naming the file and the config field (transformers
        # would report them in a table and raise a RuntimeError, or re-initialise them).
        if not load_config.ignore_mismatched_sizes:
            check_weight_shapes(model, checkpoint_files or [], state_dict)
        return super(CardedModelMixin, type(model))._load_pretrained_model(
            model, state_dict, checkpoint_files, load_config, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, write_card: bool = True, **kwargs):
        """`PreTrainedModel.save_pretrained`, then the model card rendered from what the folder holds. Saving runs
        no part of the model: samples for the card are written only when asked (`write_card(folder,
        with_samples=True)`, `push_to_hub(..., with_samples=True)`) or by the trainer."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if write_card:
            self.write_card(save_directory)

    def write_card(self, save_directory, with_samples: bool = False) -> Path:
        """Render the folder's README.md (`hf_latent_ebm.hub.write_model_card`); with `with_samples=True`, first write
        the model's card samples into the folder (`write_card_samples`: this runs the model)."""
        from .hub import write_model_card

        if with_samples:
            self.write_card_samples(save_directory)
        return write_model_card(save_directory)

    def write_card_samples(self, save_directory) -> Path | None:
        """Write samples for the card into the folder and return their path; a model family without any returns
        None (the default)."""
        return None

    def push_to_hub(self, repo_id: str, *, private: bool = False, commit_message: str | None = None,
                    token: str | None = None, api=None, with_samples: bool = False):
        """Save to a temporary folder (weights, config, tokenizer; with `with_samples=True`, samples for the card)
        and upload it with a fresh card through `HfApi.upload_folder`."""
        import tempfile

        from .hub import push_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, write_card=False)  # push_folder renders the card, with the repo's id
            if with_samples:
                self.write_card_samples(folder)
            return push_folder(folder, repo_id, private=private, commit_message=commit_message, token=token, api=api)


__all__ = ["CardedModelMixin", "check_weight_shapes", "init_pytorch_default"]
