"""Building a trained model from a checkpoint dict, for every task (``slotlab eval``, ``figures``, ``segment``,
the zoo, :func:`slotlab.load_model`). Infrastructure; not part of the paper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from slotlab.config import defaults_for, validate
from slotlab.inference.checkpoint_io import CheckpointError, load_checkpoint
from slotlab.tasks import TASKS, get_task, task_name


def checkpoint_task(path: str | Path) -> str:
    """The task (a name of :data:`slotlab.tasks.TASKS`) a checkpoint was trained for; "unknown" without a config."""
    cfg = load_checkpoint(path)["hyper_parameters"].get("config")
    return task_name(cfg) if isinstance(cfg, dict) else "unknown"


def model_from_checkpoint(ckpt: dict[str, Any], task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """-> (model in eval mode on CPU, validated config) of a checkpoint dict (:func:`load_checkpoint`'s); ``task``:
    the one it must be (CheckpointError otherwise). The weights must fit the config's model."""
    hp = ckpt["hyper_parameters"]
    cfg = hp.get("config")
    found = task_name(cfg) if isinstance(cfg, dict) else None
    if found not in TASKS or (task is not None and found != task):
        wanted = get_task(task).adjective if task in TASKS else "a slotlab"
        raise CheckpointError(f"{ckpt['_path']} holds a {found!r} model, not {wanted} model")
    cfg = validate(cfg, defaults_for(found))
    size = hp.get("image_size")
    model = get_task(found).build_model(cfg, tuple(size) if size else None)
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
    return model.eval(), cfg


def load_model(path: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (model in eval mode on CPU, validated config, checkpoint dict) from a .ckpt file, a run folder or a
    pretrained folder, for any task (``task``: the one it must be). Never runs code from the file."""
    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt, task)
    return model, cfg, ckpt
