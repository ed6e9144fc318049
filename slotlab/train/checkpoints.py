"""Where the training stack's callers found model loading before it moved to :mod:`slotlab.inference` (which
does not need the training stack): the same names, re-exported. Not part of the paper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from slotlab.inference.checkpoint_io import TASK_WORDS, CheckpointError, UnsafeCheckpointError, load_checkpoint
from slotlab.inference.loading import checkpoint_task, load_model

__all__ = [
    "TASK_WORDS",
    "CheckpointError",
    "UnsafeCheckpointError",
    "checkpoint_task",
    "load_checkpoint",
    "load_model",
    "load_object_discovery",
    "load_set_prediction",
]


def load_object_discovery(path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (object-discovery model in eval mode on CPU, validated config, checkpoint dict)."""
    return load_model(path, "object_discovery")


def load_set_prediction(path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (set-prediction model in eval mode on CPU, validated config, checkpoint dict)."""
    return load_model(path, "set_prediction")
