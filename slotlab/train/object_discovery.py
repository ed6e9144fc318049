"""The former home of the object-discovery training code, kept as an alias for callers of its old names (e.g.
``benchmarks/throughput.py``): everything of the task now lives in :mod:`slotlab.tasks.object_discovery`."""

from slotlab.tasks.base import EVAL_SEED, image_to_model
from slotlab.tasks.object_discovery import build_model, evaluate_fg_ari, summarize

__all__ = ["EVAL_SEED", "build_model", "evaluate_fg_ari", "image_to_model", "summarize"]
