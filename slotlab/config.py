"""Experiment configs: YAML files with defaults, inheritance (``base:``), dotted command-line overrides and
validation (unknown keys get the nearest known key suggested; wrong value types are named).

The defaults below are the paper's / reference code's settings (Section 4.1 and reference_facts.md);
the YAML files under ``slotlab/configs/`` (also reachable as ``configs/`` at the repository root) only state
what differs.
"""

from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and what to do."""


# Object discovery defaults = paper / reference code (Tetrominoes sizes; CLEVR configs override the model).
DEFAULTS: dict[str, Any] = {
    "task": "object_discovery",
    "seed": 0,
    "data": {
        "name": "tetrominoes",
        "train_size": 60000,
        "eval_size": 320,
        "batch_size": 64,
        "eval_batch_size": 64,
        "seed": 0,
        "path": None,
        "cache_dir": None,
        "workers": 0,
    },
    "model": {
        "kind": "slot_attention",
        "num_slots": 4,
        "iters": 3,
        "slot_dim": 64,
        "mlp_hidden": 128,
        "encoder_channels": [32, 32, 32, 32],
        "decoder": "full_resolution",
        "decoder_channels": 32,
        "position_embedding": True,
        "factorize_decoder": True,
        "layer_norm_eps": 1e-3,  # Keras' default, used by every LayerNorm of the reference code
        "slot_attention": {
            "aggregation": "mean",
            "softmax_axis": "slots",
            "slot_init": "shared",
            "update": "gru",
            "layer_norm": True,
            "mlp": True,
            "temperature": None,
            "eps": 1e-8,
            "eps_placement": "attn",
            "identity_projections": False,
            # Not in the paper (Chang et al. 2022): backpropagate through the last iteration only.
            "implicit_differentiation": False,
        },
        "slot_mlp": {"grid": 8, "hidden": 512},  # the Slot MLP baseline (model.kind: slot_mlp)
    },
    "optim": {
        "lr": 4e-4,
        "warmup_steps": 10000,
        "decay_rate": 0.5,
        "decay_steps": 100000,
        "grad_clip": None,
    },
    "trainer": {
        "max_steps": 500000,
        "max_minutes": None,
        "val_every": 5000,
        "log_every": 50,
        "precision": "auto",
        "channels_last": "auto",
        "compile": False,
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "progress_bar": True,
        "figure_every_val": True,
        "num_figure_images": 8,
        "tune_malloc": True,
        "threads": None,
        "failed_seed": "warn",
        "failed_seed_threshold": 0.85,
        "failed_seed_after": None,
        "failed_seed_restarts": 2,
    },
    "run": {"root": "runs", "name": None},
    # FG-ARI where it is 0 / 0: "nan" (DeepMind's segmentation_metrics; means skip those images and say how many)
    # or "one" (scikit-learn's adjusted_rand_score convention).
    "eval": {"ari_undefined": "nan"},
}

# Keys whose value may be None or a value of another type than the default's.
_FLEXIBLE = {
    "model.slot_attention.temperature": (float, int, type(None)),
    "optim.grad_clip": (float, int, type(None)),
    "trainer.max_minutes": (float, int, type(None)),
    "trainer.precision": (str, int),
    "trainer.channels_last": (str, bool),
    "trainer.devices": (int, str, list),
    "trainer.threads": (int, type(None)),
    "trainer.failed_seed_after": (int, type(None)),
    "run.name": (str, type(None)),
    "data.path": (str, type(None)),
    "data.cache_dir": (str, type(None)),
}


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


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is not None:
        base_path = path.parent / base if (path.parent / base).exists() else resolve_config_path(base)
        data = merge(_load_yaml(base_path), data)
    return data


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
    try:
        parsed = yaml.safe_load(value) if value != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {e}") from e
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


def validate(cfg: dict[str, Any], defaults: dict[str, Any] = DEFAULTS, prefix: str = "") -> dict[str, Any]:
    """Fill in defaults and check every key and value type against them."""
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
            out[key] = validate(value, default, path + ".")
            continue
        out[key] = _check_type(path, value, default)
    return out


def _check_type(path: str, value: Any, default: Any) -> Any:
    allowed = _FLEXIBLE.get(path)
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
    raw: dict[str, Any] = {}
    if name_or_path is not None:
        raw = _load_yaml(resolve_config_path(name_or_path))
    raw = apply_overrides(raw, overrides or [])
    cfg = validate(raw, defaults_for(raw.get("task", "object_discovery")))
    check_values(cfg)
    return cfg


def defaults_for(task: str) -> dict[str, Any]:
    """The schema (with the paper's defaults) of a task: object_discovery or set_prediction."""
    if task == "object_discovery":
        return DEFAULTS
    if task == "set_prediction":
        from slotlab.train.set_prediction import SET_PREDICTION_DEFAULTS

        return SET_PREDICTION_DEFAULTS
    raise ConfigError(f"unknown task {task!r}; expected object_discovery or set_prediction")


def check_values(cfg: dict[str, Any]) -> None:
    """Range / choice of every value and the constraints between keys (rules: :mod:`slotlab.validate`)."""
    from slotlab.validate import check_config_values

    check_config_values(cfg)


def dump_config(cfg: dict[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
