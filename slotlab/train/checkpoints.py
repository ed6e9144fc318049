"""Loading trained models back from Lightning checkpoints, for every task (``slotlab eval``, ``figures``,
``segment``, the zoo). Training infrastructure; not part of the paper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from slotlab.config import defaults_for, validate
from slotlab.runs import checkpoint_file
from slotlab.tasks import get_task
from slotlab.train.state import CheckpointFormatError, check_format

TASK_WORDS = {"object_discovery": "an object-discovery", "set_prediction": "a set-prediction"}


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not a slotlab model of the expected kind."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict of a .ckpt file or a run folder (its last.ckpt), format-checked; ``_path`` added."""
    path = checkpoint_file(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many kinds for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"{path} is not a slotlab/Lightning checkpoint (no state_dict / hyper_parameters)")
    try:
        check_format(ckpt, str(path))
    except CheckpointFormatError as e:
        raise CheckpointError(str(e)) from e
    ckpt["_path"] = str(path)
    return ckpt


def checkpoint_task(path: str | Path) -> str:
    """The task ("object_discovery" / "set_prediction") a checkpoint was trained for."""
    cfg = load_checkpoint(path)["hyper_parameters"].get("config")
    return cfg.get("task", "object_discovery") if isinstance(cfg, dict) else "unknown"


def load_model(path: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (model in eval mode on CPU, validated config, checkpoint dict) from a .ckpt file or a run folder, for any
    task (``task``: the one it must be; CheckpointError otherwise). The weights must fit the config's model."""
    ckpt = load_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    cfg = hp.get("config")
    found = cfg.get("task", "object_discovery") if isinstance(cfg, dict) else None
    if found not in TASK_WORDS or (task is not None and found != task):
        wanted = TASK_WORDS.get(task or "", "a slotlab")
        raise CheckpointError(f"{ckpt['_path']} holds a {found!r} model, not {wanted} model")
    cfg = validate(cfg, defaults_for(found))
    t = get_task(found)
    size = hp.get("image_size")
    model = t.build_model(cfg, tuple(size) if size else None)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # size mismatches
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        raise CheckpointError(f"{ckpt['_path']} does not match the model its config describes: {first.strip()}") from e
    if missing or unexpected:
        raise CheckpointError(
            f"{ckpt['_path']} does not match the model its config describes: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model.eval(), cfg, ckpt


def load_object_discovery(path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (object-discovery model in eval mode on CPU, validated config, checkpoint dict)."""
    return load_model(path, "object_discovery")


def load_set_prediction(path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (set-prediction model in eval mode on CPU, validated config, checkpoint dict)."""
    return load_model(path, "set_prediction")
