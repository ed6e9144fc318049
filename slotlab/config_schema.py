"""The config schema of a task, and every table derived from it.

A task declares its schema once, next to its code in ``slotlab/tasks/``, as a :class:`TaskSchema`: its own
``data`` and ``model`` sections (ordered :class:`~slotlab.config_keys.Key` declarations, often picked from the
catalogues of :mod:`slotlab.defaults`) and its defaults of shared keys; the task class carries it
(``Task.schema``) and the task registry (:mod:`slotlab.tasks`) makes it known. From it derive:

- :meth:`TaskSchema.defaults`: the config of the task when nothing is overridden (key order = config order);
- :meth:`TaskSchema.types` (the old ``FLEXIBLE``), :meth:`TaskSchema.rules` (``RULES``) and
  :meth:`TaskSchema.safe_on_resume` (``SAFE_ON_RESUME``), used by :mod:`slotlab.config`, :mod:`slotlab.validate`
  and :mod:`slotlab.train.resume`;
- :meth:`TaskSchema.model_kwargs`: the model constructor's keyword arguments from a config's ``model`` section;
- :func:`markdown`: the key table of ``docs/configs.md`` (``python tools/config_docs.py`` writes it).

Sections every task shares (``seed``, ``optim``, ``trainer``, ``run``, ``eval``) come from
:mod:`slotlab.defaults`. The names of this module's vocabulary are re-exported, so that a task's schema module
needs one import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from slotlab.config_keys import Key, Section, pick
from slotlab.config_rules import (
    Bool,
    ChannelsLast,
    Choice,
    Devices,
    Float,
    Int,
    IntList,
    Precision,
    Rule,
    Text,
    kind_of,
    yaml_scalar,
)
from slotlab.defaults import SEED, SHARED_SECTIONS


class SchemaError(ValueError):
    """A schema declared wrongly (a bug of the task that declares it, not a user error)."""


@dataclass(frozen=True)
class TaskSchema:
    """The config keys of one task.

    Args:
        name: the task's name (a config's ``task:``).
        data: the task's ``data`` section: name -> Key / Section, in config order.
        model: the task's ``model`` section.
        shared_defaults: the task's own defaults of shared keys, by dotted path
            (``{"optim.warmup_steps": 1000}``).
        doc: one line saying what the task is, for the key table.
    """

    name: str
    data: Mapping[str, Key | Section]
    model: Mapping[str, Key | Section]
    shared_defaults: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        keys = self.keys  # builds the tree: a wrong shared default fails here, at declaration
        for path, key in keys.items():
            if not isinstance(key.doc, str) or not key.doc.strip():
                raise SchemaError(f"task {self.name!r}: config key {path} has no doc")
            types = key.accepted_types()
            if types is not None and not isinstance(key.default, types):
                raise SchemaError(f"task {self.name!r}: the default of {path} ({key.default!r}) is not {types}")
            key.rule.check(path, key.default)  # a default outside its own rule is a declaration bug

    # ------------------------------------------------------------------ the tree
    @cached_property
    def tree(self) -> Section:
        """The whole schema: ``task``, ``seed``, ``data``, ``model``, then the shared sections."""
        task = Key(self.name, Choice((self.name,)), "the task (the default task when a config names none)")
        sections: dict[str, Key | Section] = {
            "task": task,
            "seed": SEED,
            "data": Section(dict(self.data), doc=f"the images of task {self.name}"),
            "model": Section(dict(self.model), doc=f"the model of task {self.name}"),
            **SHARED_SECTIONS,
        }
        for path, value in self.shared_defaults.items():
            sections = _with_default(sections, path.split("."), value, f"task {self.name!r}: shared default {path}")
        return Section(sections)

    @cached_property
    def keys(self) -> dict[str, Key]:
        """Dotted path -> Key, in config order."""
        return dict(self.tree.leaves())

    # ------------------------------------------------------------------ derived tables
    def defaults(self) -> dict[str, Any]:
        """The task's config when nothing is set (a new dict every call)."""
        return self.tree.defaults()

    def rules(self) -> dict[str, Rule]:
        """Dotted path -> the rule its value must pass."""
        return {path: key.rule for path, key in self.keys.items()}

    def types(self) -> dict[str, tuple[type, ...]]:
        """Dotted path -> accepted types, for keys whose value may be null or of another type than the default's."""
        return {path: key.types for path, key in self.keys.items() if key.types}

    def safe_on_resume(self) -> frozenset[str]:
        """Keys ``slotlab train --resume`` may change: how long and how the run is executed, not what it computes."""
        return frozenset(path for path, key in self.keys.items() if key.resume)

    def evaluation_only(self) -> frozenset[str]:
        """Keys that act in eval mode only (never on the weights): a zoo entry may set them after training."""
        return frozenset(path for path, key in self.keys.items() if key.evaluation)

    def model_kwargs(self, model_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The model constructor's keyword arguments from a (validated) ``model`` section, for its ``kind``: every
        key whose ``kinds`` include it, under its ``arg`` name; a missing key takes its default."""
        kind = model_cfg.get("kind", self.keys["model.kind"].default) if "kind" in self.model else None
        return _kwargs(self.model, model_cfg, kind, "")


# ---------------------------------------------------------------------------------------------- helpers
def _with_default(items: Mapping[str, Key | Section], parts: list[str], value: Any, where: str) -> dict:
    """``items`` with the key at ``parts`` given another default (SchemaError when there is no such key)."""
    head, rest = parts[0], parts[1:]
    item = items.get(head)
    if item is None or isinstance(item, Section) != bool(rest):
        raise SchemaError(f"{where}: no such key")
    if rest:
        item = item.but(keys=_with_default(item.keys, rest, value, where))
    else:
        item = item.but(default=value)
    return {**items, head: item}


def _applies(item: Key | Section, kind: str | None) -> bool:
    return not item.kinds or kind is None or kind in item.kinds


def _kwargs(section: Mapping[str, Key | Section], cfg: Mapping[str, Any], kind: str | None, prefix: str) -> dict:
    """Constructor arguments from ``cfg`` (a config section; a missing key takes its default)."""
    out: dict[str, Any] = {}
    for name, item in section.items():
        if not _applies(item, kind):
            continue
        if isinstance(item, Section):
            value = {**item.defaults(), **cfg.get(name, {})}
            if item.arg:
                out[item.arg] = value  # the whole section as one dict argument
            elif item.prefix is not None:
                out.update(_kwargs(item.keys, value, kind, prefix + item.prefix))
        elif item.arg is not None:
            out[prefix + (item.arg or name)] = cfg.get(name, item.default)
    return out


# ---------------------------------------------------------------------------------------- the key table
def _yaml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return yaml_scalar(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[tuple[str, Key, str]]) -> list[str]:
    lines = ["| key | default | type | allowed | resume | what |", "|---|---|---|---|---|---|"]
    for path, key, default in rows:
        resume = "yes" if key.resume else ""
        lines.append(
            f"| `{path}` | {_cell(default)} | {key.type_name()} | {_cell(key.rule.describe())} | {resume} "
            f"| {_cell(key.doc)} |"
        )
    return lines


def markdown(schemas: Sequence[TaskSchema]) -> str:
    """The key table of ``docs/configs.md``: the shared keys once (a default that differs between tasks is
    given per task), then each task's ``data`` and ``model`` keys."""
    lines = [
        "*resume*: `slotlab train --resume RUN_DIR key=value` may change the key. Generated from the schema by "
        "`python tools/config_docs.py`; `tests/test_config_schema.py` checks that it is up to date.",
        "",
        "### Shared keys",
        "",
    ]
    rows = []
    for path, key in schemas[0].keys.items():
        if path == "task" or path.startswith(("data.", "model.")):
            continue
        values = {s.name: f"`{_yaml(s.keys[path].default)}`" for s in schemas if path in s.keys}
        same = len(set(values.values())) == 1
        rows.append(
            (path, key, next(iter(values.values())) if same else ", ".join(f"{v} ({n})" for n, v in values.items()))
        )
    lines += _table(rows)
    for s in schemas:
        lines += ["", f"### Task `{s.name}`" + (f": {s.doc}" if s.doc else ""), ""]
        lines += _table(
            [(p, k, f"`{_yaml(k.default)}`") for p, k in s.keys.items() if p.startswith(("data.", "model."))]
        )
    return "\n".join(lines) + "\n"


#: The markers around the generated key table in ``docs/configs.md``.
BEGIN = "<!-- BEGIN generated key table: python tools/config_docs.py -->"
END = "<!-- END generated key table -->"


def splice(text: str, table: str) -> str:
    """``text`` (docs/configs.md) with ``table`` between :data:`BEGIN` and :data:`END`."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"the text needs one {BEGIN!r} line before one {END!r} line")
    head, rest = text.split(BEGIN)
    return f"{head}{BEGIN}\n{table}{END}{rest.split(END, 1)[1]}"


__all__ = [
    "Bool",
    "ChannelsLast",
    "Choice",
    "Devices",
    "Float",
    "Int",
    "IntList",
    "Key",
    "Precision",
    "Rule",
    "SchemaError",
    "Section",
    "TaskSchema",
    "Text",
    "kind_of",
    "markdown",
    "pick",
    "splice",
]
