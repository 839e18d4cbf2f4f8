"""Name -> class registries for the parts a latent-EBM model is made of (priors, decoders, encoders, learners), and
`PartConfig`, the small strict config class each part declares next to its code.

A config names its parts by string (`prior_type`, `decoder_type`, `encoder_type`, `learner`); adding a part is a
subclass of the part's base class plus one `register` call, and the configs accept its name from then on. A part
whose class sets `config_class` (a `PartConfig`) is configured by the model config's sub-config of that kind
(`prior_config`, ...), a dict in config.json validated against that class, as transformers' CLIP config holds
`text_config` and `vision_config`.
"""

import dataclasses
import inspect

from huggingface_hub.dataclasses import strict
from huggingface_hub.errors import StrictDataclassError


@strict
@dataclasses.dataclass
class PartConfig:
    """
    The settings of one part, declared next to its code as a strict dataclass (`@strict @dataclass class
    MyPriorConfig(PartConfig)`, with `validate_*` methods for range checks) and set on the part class as its
    `config_class`. The model config stores it as a plain dict (`to_dict`), which may leave out fields at their
    defaults; `from_dict` checks names, types and ranges and raises a ValueError naming the sub-config and field.
    """

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None, where: str | None = None) -> "PartConfig":
        """The typed config from a (possibly partial) dict; `where` (e.g. "prior_config") prefixes errors."""
        where = where or cls.__name__
        if isinstance(values, cls):
            return values
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ValueError(f"{where} must be a dict, got {type(values).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown} for {cls.__name__}; known: {sorted(known)}")
        missing = sorted(field.name for field in dataclasses.fields(cls) if field.name not in values
                         and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING)
        if missing:
            raise ValueError(f"{where}: missing required field(s) {missing} of {cls.__name__}")
        try:
            return cls(**values)
        except StrictDataclassError as error:
            raise ValueError(f"{where}: {error}") from error

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))


class Registry:
    """Parts of one kind, each a subclass of `base`, looked up by name.

    Args:
        kind (`str`): What the registry holds ("prior", "decoder", ...), for error messages.
        base (`type`): The base class every registered part must subclass.
    """

    def __init__(self, kind: str, base: type):
        self.kind = kind
        self.base = base
        self._classes: dict[str, type] = {}

    def register(self, name: str, part_class: type | None = None):
        """Register `part_class` under `name`; without a class, return a decorator that does."""
        if part_class is None:
            return lambda cls: self.register(name, cls)
        if not (isinstance(part_class, type) and issubclass(part_class, self.base)):
            raise TypeError(f"a {self.kind} must subclass {self.base.__name__}, got {part_class!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        known = self._classes.get(name)
        if known is not None and known is not part_class:
            raise ValueError(f"{self.kind} {name!r} is already registered to {known.__qualname__}")
        config_class = getattr(part_class, "config_class", None)
        if config_class is not None and not (isinstance(config_class, type) and issubclass(config_class, PartConfig)):
            raise TypeError(f"{part_class.__qualname__}.config_class must subclass PartConfig, got {config_class!r}")
        self._classes[name] = part_class
        return part_class

    def get(self, name: str, field: str | None = None) -> type:
        """The class registered under `name`; a ValueError naming the known ones (and the config `field` that gave
        the name, when given) otherwise."""
        if name not in self._classes:
            where = f"{field}: " if field else ""
            raise ValueError(f"{where}unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._classes[name]

    def config_class(self, name: str, field: str | None = None) -> type[PartConfig] | None:
        """The `PartConfig` class the part registered under `name` declares (None for a part without one)."""
        return getattr(self.get(name, field), "config_class", None)

    def arguments(self, name: str, settings: dict, where: str, field: str | None = None) -> dict:
        """The keyword arguments (besides `latent_dim`) that build the part registered under `name` from its settings
        dict (the model config's `<kind>_config`, with any fields the model config supplies): checked against the
        part's `config_class` (names, types, ranges, defaults filled in), or, for a part that declares none (a
        user's part), against its constructor's signature. Bad settings raise a ValueError that starts with `where`
        ("decoder_config", "modalities.image.decoder_config"); the part's own construction is never wrapped, so
        an error inside it is not disguised as a settings error."""
        part_class = self.get(name, field)
        config_class = getattr(part_class, "config_class", None)
        if config_class is not None:
            return config_class.from_dict(settings, where).to_dict()
        if not isinstance(settings, dict):
            raise ValueError(f"{where} must be a dict, got {type(settings).__name__}")
        try:
            inspect.signature(part_class).bind(latent_dim=0, **settings)
        except TypeError as error:  # binding only: names missing or unknown to the constructor
            raise ValueError(f"{where}: {error} ({part_class.__qualname__}{inspect.signature(part_class)})") from None
        return dict(settings)

    def build(self, name: str, latent_dim: int, settings: dict, where: str, field: str | None = None):
        """The part registered under `name`, built from its checked `arguments`."""
        return self.get(name, field)(latent_dim=latent_dim, **self.arguments(name, settings, where, field))

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name) -> bool:
        return name in self._classes

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.names()})"


__all__ = ["Registry", "PartConfig"]
