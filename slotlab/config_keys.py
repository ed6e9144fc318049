"""What one config key is, declared once: its default, the types its value may have, its rule (range or choices,
:mod:`slotlab.config_rules`), whether ``slotlab train --resume`` may change it, a one-line doc, and (for model
keys) the constructor argument it becomes. A :class:`Section` is an ordered group of keys (``optim``,
``model.slot_attention``, ...). :mod:`slotlab.config_schema` puts a task's sections together and derives every
table from them (defaults, type and range checks, resume-safe keys, builder arguments, the docs' key table).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from slotlab.config_rules import Rule


@dataclass(frozen=True)
class Key:
    """One config key.

    Args:
        default: the value when a config does not set it (the paper's / reference code's setting).
        rule: the range or choices a value must be in (checked after the type).
        doc: one line for the key table of ``docs/configs.md``.
        resume: ``slotlab train --resume`` may change it (how long or how a run is executed, never what it
            computes).
        types: the types a value may have when it is not just the default's type (None among them: the key may be
            null); empty: the default's type (an int where the default is a float; any value where it is None).
        arg: model keys: the keyword argument of the model's constructor the value becomes ("" = the key's name,
            None = not passed to the constructor).
        kinds: model keys: the ``model.kind`` values whose constructor takes it (empty = every kind).
        evaluation: the key acts in eval mode only and never changes the weights (T or slot merging at test
            time), so a zoo entry may set it after training (``tools/add_to_zoo.py --set``).
    """

    default: Any
    rule: Rule
    doc: str
    resume: bool = False
    types: tuple[type, ...] = ()
    arg: str | None = ""
    kinds: tuple[str, ...] = ()
    evaluation: bool = False

    def but(self, **changes: Any) -> Key:
        """This key with some fields changed (typically the default, in a task that uses a shared key)."""
        return replace(self, **changes)

    def accepted_types(self) -> tuple[type, ...] | None:
        """The types a value may have (None: any; the default is None and no types are declared)."""
        if self.types:
            return self.types
        d = self.default
        if isinstance(d, bool):
            return (bool,)
        if isinstance(d, float):
            return (float, int)
        if isinstance(d, int):
            return (int,)
        if d is None:
            return None
        return (type(d),)

    def type_name(self) -> str:
        """The accepted types as the key table writes them: ``int``, ``float or null``, ``str or bool``."""
        types = self.types or (type(self.default),)
        return " or ".join("null" if t is type(None) else t.__name__ for t in types)


@dataclass(frozen=True)
class Section:
    """An ordered group of keys (and nested sections).

    Args:
        keys: name -> :class:`Key` or nested :class:`Section`, in the order configs and tables list them.
        doc: one line for the key table.
        arg: model sections: the constructor takes the whole section as one dict argument of this name.
        prefix: model sections without ``arg``: each key becomes its own argument, named ``prefix`` + its arg.
            None (and no ``arg``): the section is not passed to the constructor.
        kinds: model sections: the ``model.kind`` values whose constructor takes it (empty = every kind).
    """

    keys: Mapping[str, Key | Section]
    doc: str = ""
    arg: str | None = None
    prefix: str | None = None
    kinds: tuple[str, ...] = field(default=())

    def but(self, **changes: Any) -> Section:
        """This section with some fields changed (``keys`` replaces the whole mapping)."""
        return replace(self, **changes)

    def with_defaults(self, **defaults: Any) -> Section:
        """This section with other defaults for some of its (direct) keys: ``SLOT_MLP.with_defaults(grid=4)``."""
        unknown = set(defaults) - set(self.keys)
        if unknown:
            raise KeyError(f"not keys of this section: {sorted(unknown)}")
        keys = {n: (k.but(default=defaults[n]) if n in defaults else k) for n, k in self.keys.items()}
        return replace(self, keys=keys)

    def leaves(self, prefix: str = "") -> Iterator[tuple[str, Key]]:
        """(dotted path, key) of every key, nested sections included, in order."""
        for name, item in self.keys.items():
            if isinstance(item, Section):
                yield from item.leaves(f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", item

    def defaults(self) -> dict[str, Any]:
        """The nested dict of default values (lists copied)."""
        return {
            name: item.defaults() if isinstance(item, Section) else _copy(item.default)
            for name, item in self.keys.items()
        }


def pick(keys: Mapping[str, Key | Section], *names: str, **defaults: Any) -> dict[str, Key | Section]:
    """Some keys of a catalogue, in the order named, some with another default: a task's section reusing shared
    declarations, e.g. ``pick(MODEL, "num_slots", "iters", num_slots=10)``."""
    unknown = (set(names) | set(defaults)) - set(keys)
    if unknown or set(defaults) - set(names):
        raise KeyError(f"pick: {sorted(unknown or set(defaults) - set(names))} not in the catalogue or not picked")
    return {n: (keys[n].but(default=defaults[n]) if n in defaults else keys[n]) for n in names}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
