"""The kinds of value a config key may hold (an integer in a range, one of some choices, a path, ...): each rule
checks a value, raising a :class:`ConfigError` that names the key and what it must be, and describes itself in
one phrase for the generated key table (``docs/configs.md``). The keys themselves and their rules are declared
in :mod:`slotlab.config_schema` terms by :mod:`slotlab.defaults` (shared sections) and by each task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from slotlab.errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range
MAX_COUNT = 10**9  # images, steps
MAX_SLOTS = 256
MAX_ITERS = 100
PRECISIONS = ("auto", "32-true", "32", 32, "bf16-mixed", "bf16", "16-mixed", "16", 16)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
UNSUPPORTED_PRECISIONS = {
    "64-true": "the data pipeline feeds float32 images, which a float64 model rejects",
    "64": "the data pipeline feeds float32 images, which a float64 model rejects",
    64: "the data pipeline feeds float32 images, which a float64 model rejects",
    "bf16-true": "the data pipeline feeds float32 images, which a bfloat16 model rejects; use bf16-mixed",
    "16-true": "the data pipeline feeds float32 images, which a float16 model rejects; use 16-mixed",
}


class Rule(Protocol):
    """What a config key's rule does: check a value (ConfigError naming ``path``) and describe what it allows."""

    def check(self, path: str, value: Any) -> None: ...

    def describe(self) -> str: ...


def kind_of(value: Any) -> str:
    """How an error message shows a value: ``null``, ``the boolean True``, ``int 5``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {value!r}"
    return f"{type(value).__name__} {value!r}"


def _or_null(nullable: bool) -> str:
    return ", or null" if nullable else ""


@dataclass(frozen=True)
class Int:
    """An integer in [lo, hi] (or null when ``nullable``)."""

    lo: int
    hi: int
    nullable: bool = False

    def check(self, path: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, int) or isinstance(value, bool) or not self.lo <= value <= self.hi:
            null = " or null" if self.nullable else ""
            raise ConfigError(f"{path} must be >= {self.lo} and <= {self.hi} (an integer{null}), got {kind_of(value)}")

    def describe(self) -> str:
        return f"integer {self.lo} to {self.hi:,}" + _or_null(self.nullable)


@dataclass(frozen=True)
class Float:
    """A finite number in [lo, hi] ((lo, hi] when ``lo_open``), or null when ``nullable``."""

    lo: float
    hi: float
    lo_open: bool = False
    nullable: bool = False

    def check(self, path: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > self.lo if self.lo_open else value >= self.lo) and value <= self.hi
        if not ok:
            low = f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}"
            null = " or null" if self.nullable else ""
            raise ConfigError(f"{path} must be a finite number {low} and <= {self.hi:g}{null}, got {kind_of(value)}")

    def describe(self) -> str:
        low = f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}"
        return f"number {low}, <= {self.hi:g}" + _or_null(self.nullable)


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (compared with their type: ``True`` is not ``1``)."""

    values: tuple[Any, ...]

    def check(self, path: str, value: Any) -> None:
        if not any(type(value) is type(v) and value == v for v in self.values):
            raise ConfigError(f"{path} must be one of {', '.join(map(repr, self.values))}; got {kind_of(value)}")

    def describe(self) -> str:
        return "one of " + ", ".join(dict.fromkeys(yaml_scalar(v) for v in self.values))


@dataclass(frozen=True)
class Bool:
    def check(self, path: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {kind_of(value)}")

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class IntList:
    """A list of integers in [lo, hi] with ``min_len`` to ``max_len`` entries."""

    lo: int
    hi: int
    min_len: int = 1
    max_len: int = 16

    def _count(self) -> str:
        return f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len} to {self.max_len}"

    def check(self, path: str, value: Any) -> None:
        ok = isinstance(value, list) and self.min_len <= len(value) <= self.max_len
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and self.lo <= v <= self.hi for v in value)
        if not ok:
            raise ConfigError(
                f"{path} must be a list of {self._count()} integers from {self.lo} to {self.hi}, got {kind_of(value)}"
            )

    def describe(self) -> str:
        return f"list of {self._count()} integers {self.lo} to {self.hi}"


@dataclass(frozen=True)
class Text:
    """A non-empty string: ``kind`` "path" (any path) or "name" (one folder name: no '/', not '.' or '..')."""

    kind: str = "path"
    nullable: bool = False

    def check(self, path: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        null = " or null" if self.nullable else ""
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise ConfigError(f"{path} must be a non-empty {self.kind}{null}, got {kind_of(value)}")
        if self.kind == "name" and ("/" in value or "\\" in value or value in (".", "..") or len(value) > 200):
            raise ConfigError(
                f"{path} must be a folder name (no '/', not '.' or '..', at most 200 characters), got {value!r}"
            )

    def describe(self) -> str:
        what = "a folder name (no '/')" if self.kind == "name" else "a path"
        return what + _or_null(self.nullable)


@dataclass(frozen=True)
class Devices:
    """``auto``, a number of devices >= 1, or a list of distinct device ids (GPUs)."""

    def check(self, path: str, value: Any) -> None:
        if value == "auto" and isinstance(value, str):
            return
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096:
            return
        if (
            isinstance(value, list)
            and 1 <= len(value) <= 4096
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 4096 for v in value)
            and len(set(value)) == len(value)
        ):
            return
        raise ConfigError(
            f"{path} must be 'auto', a number of devices from 1 to 4096 or a list of distinct device ids "
            f"(e.g. [0, 1]), got {kind_of(value)}"
        )

    def describe(self) -> str:
        return "auto, a number 1 to 4096, or a list of distinct device ids"


@dataclass(frozen=True)
class ChannelsLast:
    def check(self, path: str, value: Any) -> None:
        if isinstance(value, bool) or (isinstance(value, str) and value == "auto"):
            return
        raise ConfigError(f"{path} must be 'auto', true or false, got {kind_of(value)}")

    def describe(self) -> str:
        return "auto, true or false"


@dataclass(frozen=True)
class Precision:
    def check(self, path: str, value: Any) -> None:
        if not isinstance(value, bool) and value in UNSUPPORTED_PRECISIONS:
            raise ConfigError(f"{path} {value!r} is not supported: {UNSUPPORTED_PRECISIONS[value]}")
        Choice(PRECISIONS).check(path, value)

    def describe(self) -> str:
        return Choice(PRECISIONS).describe()


def generic_rule(value: Any) -> Rule | None:
    """A loose check by type for a value without a declared rule (numbers finite, counts not negative)."""
    if isinstance(value, bool):
        return Bool()
    if isinstance(value, int):
        return Int(0, MAX_COUNT)
    if isinstance(value, float):
        return Float(-1e12, 1e12)
    return None


def yaml_scalar(value: Any) -> str:
    """A value as a config file writes it: ``true``, ``null``, ``auto``, ``32``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
