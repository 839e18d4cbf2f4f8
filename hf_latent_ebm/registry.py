"""Name -> class registries for the parts a latent-EBM model is made of (priors, decoders, encoders, learners).

A config names its parts by string (`prior_type`, `decoder_type`, `encoder_type`, `learner`); adding a part is a
subclass of the part's base class plus one `register` call, and the configs accept its name from then on.
"""


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
        self._classes[name] = part_class
        return part_class

    def get(self, name: str, field: str | None = None) -> type:
        """The class registered under `name`; a ValueError naming the known ones (and the config `field` that gave
        the name, when given) otherwise."""
        if name not in self._classes:
            where = f"{field}: " if field else ""
            raise ValueError(f"{where}unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._classes[name]

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name) -> bool:
        return name in self._classes

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.names()})"


__all__ = ["Registry"]
