"""What every model of the library does with checkpoints, cards and the Hub, and the default weight init, whatever
its family."""

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


class CardedModelMixin:
    """
    For a `PreTrainedModel`: loading errors that name the checkpoint, `save_pretrained` that also writes a model
    card (README.md, rendered from the saved folder by `hf_latent_ebm.hub`), and `push_to_hub` through the same
    folder. A model family implements `write_card(save_directory)`.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except OSError:
            raise
        except Exception as error:  # safetensors/json errors on a damaged file: say which checkpoint and why.
            raise OSError(f"could not load a {cls.__name__} checkpoint from {pretrained_model_name_or_path!r}: "
                          f"{type(error).__name__}: {error}") from error

    def save_pretrained(self, save_directory, *args, write_card: bool = True, **kwargs):
        """`PreTrainedModel.save_pretrained`, then the model card rendered from the saved folder."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if write_card:
            self.write_card(save_directory)

    def write_card(self, save_directory) -> None:
        from .hub import write_model_card

        write_model_card(save_directory)

    def push_to_hub(self, repo_id: str, *, private: bool = False, commit_message: str | None = None,
                    token: str | None = None, api=None):
        """Save to a temporary folder (weights, config, card, tokenizer) and upload it with `HfApi.upload_folder`."""
        import tempfile

        from .hub import push_folder

        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            return push_folder(folder, repo_id, private=private, commit_message=commit_message, token=token, api=api)


__all__ = ["CardedModelMixin", "init_pytorch_default"]
