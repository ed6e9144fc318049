"""Where the training stack's callers found model loading before it moved to :mod:`slotlab.inference` (which
does not need the training stack): the same names, re-exported. Not part of the paper."""

from __future__ import annotations

from slotlab.inference.checkpoint_io import CheckpointError, UnsafeCheckpointError, load_checkpoint
from slotlab.inference.loading import checkpoint_task, load_model

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "checkpoint_task",
    "load_checkpoint",
    "load_model",
]
