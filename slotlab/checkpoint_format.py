"""What slotlab adds to a Lightning checkpoint: the format version, the task and the RNG states.

Everything stored here is a tensor, a number or a string, so checkpoints load under ``torch.load(...,
weights_only=True)`` (Lightning's default when resuming). The format version guards against loading weights
into a model that computes a different function:

- format 1 (unversioned): before the parity fix: stride-2 layers padded symmetrically and LayerNorm eps 1e-5.
- format 2: TF "SAME" alignment of every stride-2 layer and LayerNorm eps 1e-3, as the reference code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from slotlab.errors import UserError

CHECKPOINT_FORMAT = 2


class CheckpointFormatError(UserError, ValueError):
    """A checkpoint written by a slotlab whose models compute another function than this version's."""


def add_state(checkpoint: dict[str, Any], task: str) -> None:
    """Record the format, the task and the torch / numpy global RNG states in ``checkpoint``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    checkpoint["slotlab_format"] = CHECKPOINT_FORMAT
    checkpoint["slotlab_task"] = task
    checkpoint["slotlab_rng"] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached),
    }


def restore_state(checkpoint: dict[str, Any]) -> None:
    """Restore the RNG states :func:`add_state` recorded (missing entries are left alone)."""
    rng = checkpoint.get("slotlab_rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy_keys" in rng:
        keys = rng["numpy_keys"].numpy().astype(np.uint32)
        np.random.set_state(("MT19937", keys, rng["numpy_pos"], rng["numpy_has_gauss"], rng["numpy_cached_gaussian"]))


def check_format(checkpoint: dict[str, Any], path: str) -> None:
    """Refuse checkpoints of another format with a message that says why and what to do."""
    found = checkpoint.get("slotlab_format", 1)
    if found == CHECKPOINT_FORMAT:
        return
    if found == 1:
        raise CheckpointFormatError(
            f"{path} was written by slotlab before checkpoint format {CHECKPOINT_FORMAT} (0.1.x): its models padded "
            "stride-2 layers symmetrically and used LayerNorm eps 1e-5, so its weights compute a different "
            "function in this version (which matches the reference code: TF 'SAME' alignment, eps 1e-3). "
            "Retrain the run with this version, or evaluate it with slotlab 0.1.x."
        )
    raise CheckpointFormatError(
        f"{path} has checkpoint format {found!r}; this slotlab reads format {CHECKPOINT_FORMAT}. Use the slotlab "
        "version that wrote it."
    )
