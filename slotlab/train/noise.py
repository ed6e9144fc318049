"""Slot-initialisation noise moved to :mod:`slotlab.noise` (the tasks and the inference layer use it without the
training stack); its names are re-exported here for code that imports them from this path."""

from slotlab.noise import index_noise, step_noise

__all__ = ["index_noise", "step_noise"]
