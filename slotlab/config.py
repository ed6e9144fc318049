"""Experiment configs: YAML files with defaults, inheritance (``base:``), dotted command-line overrides and
validation (unknown keys get the nearest known key suggested; wrong value types are named).

The keys, their defaults (the paper's / reference code's settings), types and rules are declared once, in each
task's schema (:class:`slotlab.config_schema.TaskSchema`, carried by the task: ``get_task(name).schema``) and in
:mod:`slotlab.defaults` for the sections every task shares; the YAML files under ``slotlab/configs/`` (also
reachable as ``configs/`` at the repository root) only state what differs.
"""

from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slotlab.config_limits import (
    MAX_BASE_CHAIN,
    MAX_DEPTH,
    check_structure,
    load_yaml_text,
    read_config_text,
)
from slotlab.errors import ConfigError
from slotlab.validate import check_config_values

if TYPE_CHECKING:
    from slotlab.config_schema import TaskSchema


def __getattr__(name: str) -> Any:
    """Names kept for callers: ``DEFAULTS`` (the default task's config), ``_FLEXIBLE`` (accepted types of every
    registered task's keys whose value may be null or of another type than the default's)."""
    if name == "DEFAULTS":
        from slotlab.tasks import DEFAULT_TASK

        return defaults_for(DEFAULT_TASK)
    if name == "_FLEXIBLE":
        return {path: types for schema in task_schemas() for path, types in schema.types().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def task_schema(task: str) -> TaskSchema:
    """The schema of the task called ``task``; ConfigError naming the known tasks otherwise."""
    from slotlab.tasks import get_task

    return get_task(task).schema


def task_schemas() -> list[TaskSchema]:
    """The schemas of every registered task, built-in ones first."""
    from slotlab.tasks import TASKS

    return [t.schema for t in TASKS.values()]


def config_dir() -> Path:
    return Path(str(resources.files("slotlab") / "configs"))


def available_configs() -> list[str]:
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a packaged config (``tetrominoes_quick``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    packaged = config_dir() / f"{p.stem if p.suffix else name_or_path}.yaml"
    if packaged.exists():
        return packaged
    near = difflib.get_close_matches(p.stem, available_configs(), n=3)
    hint = f" Did you mean {' or '.join(near)}?" if near else ""
    raise ConfigError(f"config {name_or_path!r} not found (no such file, no packaged config).{hint}")


def _load_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file with its ``base:`` chain merged in; ``chain``: the files that named this one as their base.
    Every file is checked against the limits of :mod:`slotlab.config_limits` before it is parsed."""
    chain = (*chain, path)
    data = load_yaml_text(read_config_text(path), str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: base must be a config name or a path to a YAML file, got {_kind(base)}")
        base_path = path.parent / base if (path.parent / base).is_file() else resolve_config_path(base)
        if any(_same_file(base_path, p) for p in chain):
            loop = " -> ".join(str(p) for p in (*chain, base_path))
            raise ConfigError(
                f"{path}: base: {base} makes a loop ({loop}); a base chain must end in a file without base"
            )
        if len(chain) >= MAX_BASE_CHAIN:
            raise ConfigError(
                f"{path}: base: {base} makes a chain of more than {MAX_BASE_CHAIN} files ({chain[0]} -> ... -> "
                f"{path} -> {base_path}), the limit for a slotlab config"
            )
        data = merge(_load_yaml(base_path, chain), data)
    return data


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``optim.lr=1e-3`` -> (["optim", "lr"], 0.001); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.subkey=value (e.g. trainer.max_steps=1000)")
    key, value = text.split("=", 1)
    where = f"override {text if len(text) <= 80 else text[:77] + '...'!r}"
    if key.count(".") >= MAX_DEPTH:
        raise ConfigError(f"{where}: the key has more than {MAX_DEPTH} levels, the limit for a slotlab config")
    parsed = load_yaml_text(value, f"{where}: value") if value != "" else None
    if isinstance(parsed, str) and _looks_like_float(parsed):
        parsed = float(parsed)  # YAML 1.1 reads '4e-4' as a string
    return key.strip().split("."), parsed


_EXP_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _looks_like_float(s: str) -> bool:
    """'4e-4' (YAML 1.1 needs a dot and a signed exponent to read it as a number); not 'nan' or 'inf'."""
    return bool(_EXP_FLOAT.match(s))


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    for text in overrides:
        keys, value = parse_override(text)
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return cfg


def validate(cfg: dict[str, Any], defaults: dict[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
    """Fill in defaults and check every key and value type against them (``defaults``: a task's defaults, those
    of the task ``cfg`` names when None)."""
    if not prefix:
        check_structure(cfg, "config")  # before any value of it is copied or formatted
    if defaults is None:
        from slotlab.tasks import task_name

        defaults = defaults_for(task_name(cfg))
    return _validate(cfg, defaults, prefix, _types_of(defaults))


def _types_of(defaults: dict[str, Any]) -> dict[str, tuple[type, ...]]:
    """Accepted types of the keys (of the task ``defaults`` belong to) whose value may be null or of another type
    than the default's."""
    from slotlab.tasks import TASKS

    task = TASKS.get(defaults.get("task")) if isinstance(defaults.get("task"), str) else None
    if task is not None:
        return task.schema.types()
    return {path: types for schema in task_schemas() for path, types in schema.types().items()}


def _validate(cfg: dict[str, Any], defaults: dict[str, Any], prefix: str, types: dict) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            near = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" Did you mean {prefix}{near[0]!s}?" if near else ""
            raise ConfigError(f"unknown config key {path!r}.{hint} Known keys here: {', '.join(defaults)}")
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path!r} must be a section (mapping), got {value!r}")
            out[key] = _validate(value, default, path + ".", types)
            continue
        out[key] = _check_type(path, value, default, types.get(path))
    return out


def _check_type(path: str, value: Any, default: Any, allowed: tuple[type, ...] | None = None) -> Any:
    if allowed is None:
        if isinstance(default, bool):
            allowed = (bool,)
        elif isinstance(default, float):
            allowed = (float, int)
        elif isinstance(default, int):
            allowed = (int,)
        elif default is None:
            return value
        else:
            allowed = (type(default),)
    if isinstance(value, bool) and bool not in allowed:
        raise ConfigError(f"config key {path!r} must be {_names(allowed)}, got the boolean {value!r}")
    if not isinstance(value, allowed):
        raise ConfigError(f"config key {path!r} must be {_names(allowed)}, got {type(value).__name__} {value!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def load_config(name_or_path: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults <- YAML file (with its ``base:`` chain) <- overrides, validated."""
    from slotlab.tasks import task_name

    raw: dict[str, Any] = {}
    if name_or_path is not None:
        raw = _load_yaml(resolve_config_path(name_or_path))
    raw = apply_overrides(raw, overrides or [])
    cfg = validate(raw, defaults_for(task_name(raw)))
    check_values(cfg)
    return cfg


def defaults_for(task: str) -> dict[str, Any]:
    """The config of a registered task when nothing is set (its schema's defaults; a new dict every call)."""
    return task_schema(task).defaults()


def check_values(cfg: dict[str, Any]) -> None:
    """Range / choice of every value and the constraints between keys (rules: :mod:`slotlab.validate`)."""
    check_config_values(cfg)
