"""Metrics of the paper: FG-ARI (object discovery, Section 4.1) and Average Precision (set prediction, 4.2)."""

from slotlab.metrics.ari import ari, fg_ari
from slotlab.metrics.average_precision import average_precision, average_precision_table

__all__ = ["ari", "average_precision", "average_precision_table", "fg_ari"]
