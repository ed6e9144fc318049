"""``slotlab eval --set KEY=VALUE``: set a trained model's config keys that act in eval mode only (the schema's
``evaluation`` keys, e.g. ``model.eval_iters``, ``model.eval_spatial_prior``) for one evaluation, without
retraining and without touching the weights, as a zoo entry may (:func:`slotlab.zoo.set_evaluation_keys`). The
model attribute of each key has the key's last name (the constructor's argument). Not in the paper.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from slotlab.errors import ConfigError, UsageError


def evaluation_overrides(
    cfg: dict[str, Any], settings: list[str], prefix: str = ""
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``settings`` (``["model.eval_iters=7", ...]``) applied to a copy of a trained model's config ``cfg``: ->
    (the config as given plus the settings, not filled with defaults; the same validated; the dotted keys set).
    UsageError (its message starting with ``prefix``) for a key that is not an evaluation key of the config's
    task (it would describe a model that was not trained) or a value out of the key's range."""
    from slotlab.config import apply_overrides, check_values, task_schema, validate
    from slotlab.tasks import task_name

    task = task_name(cfg)
    allowed = task_schema(task).evaluation_only()
    paths = []
    for text in settings:
        path = text.split("=", 1)[0].strip()
        if "=" not in text or path not in allowed:
            raise UsageError(
                f"{prefix}{text!r}: only keys that act at evaluation may be set on a trained {task} model "
                f"({', '.join(sorted(allowed)) or 'none for this task'}), as key=value"
            )
        paths.append(path)
    raw = apply_overrides(copy.deepcopy(cfg), settings)
    try:
        checked = validate(raw)
        check_values(checked)
    except ConfigError as e:
        raise UsageError(f"{prefix}{' '.join(settings)}: {e}") from e
    return raw, checked, paths


def set_evaluation_options(model: nn.Module, cfg: dict[str, Any], settings: list[str]) -> dict[str, Any]:
    """Apply ``settings`` (``["model.eval_spatial_prior=0.3", ...]``) to a loaded ``model`` and a copy of its
    validated ``cfg``; -> the new config. UsageError for a key that is not an evaluation key of the model's task,
    a bad value (the schema's range), or a model without the key's attribute."""
    _, new, paths = evaluation_overrides(cfg, settings, prefix="--set ")
    for path in paths:
        section, leaf = path.split(".")
        if not hasattr(model, leaf):
            raise UsageError(f"--set {path}: this {cfg['task']} model has no such option")
        setattr(model, leaf, new[section][leaf])
    return new


__all__ = ["evaluation_overrides", "set_evaluation_options"]
