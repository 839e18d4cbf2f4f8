"""Range checks of named settings, shared by the configs and the training arguments (imports nothing)."""

from collections.abc import Iterable


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
