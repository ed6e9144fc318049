"""The checkpoint format moved to :mod:`slotlab.checkpoint_format` (the inference layer reads it without the
training stack); its names are re-exported here for code that imports them from this path."""

from slotlab.checkpoint_format import CHECKPOINT_FORMAT, CheckpointFormatError, add_state, check_format, restore_state

__all__ = ["CHECKPOINT_FORMAT", "CheckpointFormatError", "add_state", "check_format", "restore_state"]
