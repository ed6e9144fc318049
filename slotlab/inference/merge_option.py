"""``--merge-slots`` of ``slotlab eval`` / ``figures`` / ``segment``: set a trained object-discovery model's
``model.merge_slots`` (:mod:`slotlab.modules.slot_merge`; not in the paper) at evaluation, without retraining.

The option only changes how the slots' masks are grouped in eval mode, never the weights, so it may differ from
the value the model was trained (and its checkpoints picked) with: ``off`` gives the paper's masks of a model
trained with the merge, a threshold tries the merge on a model trained without it. The value is checked against
the config schema's key (one place says its range).
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from torch import nn

from slotlab.config import task_schema, task_schemas
from slotlab.errors import UsageError

KEY = "model.merge_slots"
OFF = ("off", "none", "null")  # the paper: no merge


def merge_slots_arg(text: str) -> float | str:
    """argparse type: ``off`` (the paper: no merge; returned as ``"off"``, as None means the flag was not given),
    else a cosine threshold in the schema key's range."""
    word = text.strip().lower()
    if word in OFF:
        return OFF[0]
    rule = _rule()
    try:
        value = float(word)
        rule.check(KEY, value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected off or a cosine threshold > {rule.lo:g} and <= {rule.hi:g} (e.g. 0.97), got {text!r}"
        ) from None
    return value


def _rule() -> Any:
    """The range of the key, as the task that declares it says (one place; no task named here)."""
    return next(schema.keys[KEY].rule for schema in task_schemas() if KEY in schema.keys)


def applies(cfg: dict[str, Any]) -> bool:
    """Whether a model of config ``cfg`` has the option (its task declares the key for its model kind)."""
    key = task_schema(cfg["task"]).keys.get(KEY)
    return key is not None and (not key.kinds or cfg["model"].get("kind") in key.kinds)


def refusal(cfg: dict[str, Any]) -> str:
    """The error message for a model without the option."""
    kind = cfg["model"].get("kind")
    return (
        f"--merge-slots applies to object-discovery Slot Attention models; this is a {cfg['task']} "
        f"model{f' of kind {kind}' if kind else ''}"
    )


def set_merge_slots(model: nn.Module, cfg: dict[str, Any], value: float | str | None) -> dict[str, Any]:
    """Set ``model.merge_slots`` of a loaded model to ``value`` (``"off"`` or None: no merge); -> a copy of
    ``cfg`` that says so. UsageError for a model without the option (another task, or another model kind)."""
    value = None if value in OFF else value
    if not applies(cfg) or not hasattr(model, "merge_slots"):
        raise UsageError(refusal(cfg))
    task_schema(cfg["task"]).keys[KEY].rule.check("--merge-slots", value)
    model.merge_slots = value
    cfg = copy.deepcopy(cfg)
    cfg["model"]["merge_slots"] = value
    return cfg


def describe(value: float | None) -> str:
    """The value as the flag and file names write it: ``off`` or the threshold (``0.97``)."""
    return "off" if value is None else f"{value:g}"
