"""Range checks of named settings, shared by the configs and the training arguments, and the decorator that makes a
strict config raise ValueError (imports nothing of the package)."""

import functools
from collections.abc import Iterable

CONFIG_FILE = "config.json"  # transformers' CONFIG_NAME, without importing transformers


def require_at_least(owner, names: Iterable[str], minimum: int = 1) -> None:
    """
    Raise `ValueError("<name> must be >= <minimum>, got <value>")` for the first of `names` whose attribute of
    `owner` is below `minimum`; NaN fails too, since it is not >= anything.

    Args:
        owner: The object holding the settings (a config, a training-arguments dataclass).
        names (`Iterable[str]`): The attributes to check, in the order their errors should be reported.
        minimum (`int`, defaults to 1): The smallest allowed value: 1 for counts and sizes, 0 for weights and
            intervals where 0 means "off".
    """
    for name in names:
        value = getattr(owner, name)
        if not value >= minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


def require_greater_than(owner, names: Iterable[str], bound: int = 0) -> None:
    """As `require_at_least`, for settings that must exceed `bound` (step sizes, learning rates, scales)."""
    for name in names:
        value = getattr(owner, name)
        if not value > bound:
            raise ValueError(f"{name} must be > {bound}, got {value}")


def check_layer_sizes(layer_sizes, latent_dim: int | None = None, where: str = "layer_sizes") -> None:
    """A layered latent's `layer_sizes` (the hierarchical prior's, the ladder decoder's and encoder's): >= 2 layers
    of >= 1 dimension each, and with `latent_dim` given, summing to it (z is the layers' concatenation); `where`
    names the setting in the message ("prior_config.layer_sizes")."""
    if len(layer_sizes) < 2 or any(size < 1 for size in layer_sizes):
        raise ValueError(f"{where} must list >= 2 layers of >= 1 dimension each, got {list(layer_sizes)}")
    if latent_dim is not None and sum(layer_sizes) != latent_dim:
        raise ValueError(f"{where} {list(layer_sizes)} sum to {sum(layer_sizes)}, but the model's latent_dim is "
                         f"{latent_dim}: z is the layers' concatenation")


def raise_value_errors(config_class):
    """Make a strict config's construction raise ValueError (what users catch) instead of huggingface_hub's
    StrictDataclassError, keeping the validator's message; a config built by `from_dict` (how `from_pretrained` and
    `AutoConfig` read a saved config.json) says the values came from config.json."""
    from huggingface_hub.errors import StrictDataclassError

    strict_init = config_class.__init__

    @functools.wraps(strict_init)
    def __init__(self, *args, **kwargs):
        try:
            strict_init(self, *args, **kwargs)
        except StrictDataclassError as error:
            raise ValueError(f"invalid {config_class.__name__}: {error}") from error

    config_class.__init__ = __init__
    if not getattr(config_class.from_dict, "names_the_config_file", False):  # a subclass inherits the wrapper
        from_dict = config_class.from_dict.__func__

        @functools.wraps(from_dict)
        def from_dict_naming_the_file(cls, config_dict, **kwargs):
            try:
                return from_dict(cls, config_dict, **kwargs)
            except ValueError as error:
                if str(error).startswith(CONFIG_FILE):  # a subclass's from_dict calling this one
                    raise
                raise ValueError(f"{CONFIG_FILE}: {error}") from error

        from_dict_naming_the_file.names_the_config_file = True
        config_class.from_dict = classmethod(from_dict_naming_the_file)
    return config_class
