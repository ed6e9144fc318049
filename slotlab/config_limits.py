"""Limits on what a config may hold, checked before anything in it is expanded, merged, validated or formatted:
a hostile or broken YAML file (a "billion laughs" of nested aliases, thousands of nesting levels, a ``base:``
chain that loops) is refused in milliseconds with a :class:`ConfigError` naming the file and the limit, instead
of a MemoryError or RecursionError after minutes and gigabytes.

slotlab's configs are small (a few kilobytes, a few hundred values, four levels of nesting), so the limits are
far above any real config and far below what could hurt.
"""

from __future__ import annotations

from typing import Any

import yaml

from slotlab.errors import ConfigError

MAX_BYTES = 1 << 20  # a config file (or one override value)
MAX_DEPTH = 32  # nesting levels of mappings / lists
MAX_VALUES = 10_000  # values (scalars, mappings, lists) once every alias is expanded
MAX_ALIASES = 1_000  # YAML aliases (*name)
MAX_BASE_CHAIN = 16  # files in one base: chain (the config itself included)

# libyaml's parser when PyYAML has it (fast, and the reference implementation); else PyYAML's own (the same events).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refuse(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where}: {what}, the limit for a slotlab config; refused before expanding or using it")


def check_yaml_text(text: str, where: str) -> None:
    """ConfigError when ``text`` (YAML) exceeds a limit; reads YAML events only (the parser keeps no recursion)
    and counts what aliases would expand to without expanding them; a syntax error is a ConfigError too."""
    if len(text) > MAX_BYTES:
        raise _refuse(where, f"{len(text)} characters, more than {MAX_BYTES}")
    sizes: dict[str, int] = {}  # anchor -> values its node expands to
    open_anchors: set[str] = set()
    stack: list[list[Any]] = []  # open mappings / lists: [anchor, values so far]
    total = aliases = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise _refuse(where, f"nested deeper than {MAX_DEPTH} levels")
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                stack.append([event.anchor, 1])
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, n = stack.pop()
                if anchor is not None:
                    sizes[anchor] = n
                    open_anchors.discard(anchor)
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise _refuse(where, f"more than {MAX_ALIASES} YAML aliases (*name)")
                if event.anchor in open_anchors:
                    raise ConfigError(f"{where}: the alias *{event.anchor} is inside the value it names (a loop)")
                n = sizes.get(event.anchor, 1)  # an undefined alias: the loader names it
            elif isinstance(event, yaml.ScalarEvent):
                n = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                continue
            if stack:
                stack[-1][1] += n
            else:
                total += n
            if total + sum(frame[1] for frame in stack) > MAX_VALUES:
                raise _refuse(where, f"its aliases expand to more than {MAX_VALUES} values")
    except yaml.YAMLError as e:
        if "nesting depth" in str(e):  # libyaml's own limit (1000 levels), met while it reads ahead
            raise _refuse(where, f"nested deeper than {MAX_DEPTH} levels") from None
        raise ConfigError(f"{where}: not valid YAML: {e}") from e


def load_yaml_text(text: str, where: str) -> Any:
    """``yaml.safe_load(text)`` after :func:`check_yaml_text`; a syntax error is a ConfigError naming ``where``."""
    check_yaml_text(text, where)
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader: plain data only)
    except yaml.YAMLError as e:
        if "nesting depth" in str(e):  # libyaml's own limit (1000 levels), met while it reads ahead
            raise _refuse(where, f"nested deeper than {MAX_DEPTH} levels") from None
        raise ConfigError(f"{where}: not valid YAML: {e}") from e


def read_config_text(path: Any) -> str:
    """The text of a config file, checked to be a regular file of at most MAX_BYTES before it is read."""
    from pathlib import Path

    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: not a regular file; a config is a YAML file")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e.strerror or e}") from e
    if len(data) > MAX_BYTES:
        raise _refuse(str(path), f"larger than {MAX_BYTES} bytes ({MAX_BYTES >> 20} MiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) file: {e.reason} at byte {e.start}") from e


def check_structure(value: Any, where: str) -> None:
    """ConfigError when a loaded config (e.g. one stored in a checkpoint) nests deeper than MAX_DEPTH, holds more
    than MAX_VALUES values counting shared ones each time, or contains itself; walks without recursion."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise _refuse(where, f"more than {MAX_VALUES} values")
        if isinstance(node, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise _refuse(where, f"nested deeper than {MAX_DEPTH} levels (or it contains itself)")
            children = node.values() if isinstance(node, dict) else node
            if len(children) > MAX_VALUES:
                raise _refuse(where, f"more than {MAX_VALUES} values")
            stack.extend((child, depth + 1) for child in children)
