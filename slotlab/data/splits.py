"""Fixed train / held-out splits of the procedural datasets.

A split is a disjoint RNG stream of the generator: ``stream = 4 * seed + split_id`` (train 0, eval 1, test 2),
so image i of a split is the same for every run with the same data seed, and the eval images never appear
in training. The paper trains on the first 60k images and evaluates object discovery on 320 images.
"""

from __future__ import annotations

import numpy as np

from slotlab.data.registry import get_dataset

SPLIT_IDS = {"train": 0, "eval": 1, "test": 2}


def split_stream(seed: int, split: str) -> int:
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_IDS)}")
    return 4 * int(seed) + SPLIT_IDS[split]


def generate_split(name: str, split: str, count: int, seed: int = 0, start: int = 0) -> dict[str, np.ndarray]:
    """Images ``start .. start + count - 1`` of a dataset's split (generator contract dict)."""
    info = get_dataset(name)
    return info.generate(split_stream(seed, split), start, count)
