"""Metrics of the paper: FG-ARI (object discovery) and Average Precision (set prediction)."""

from slotlab.metrics.ari import ari, fg_ari

__all__ = ["ari", "fg_ari"]
