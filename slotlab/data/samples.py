"""Held-out images of a built-in dataset with their ground-truth masks, for trying a model from Python
(``slotlab.load_images``). The same images ``slotlab eval`` scores (paper Section 4 datasets, procedural)."""

from __future__ import annotations

import numpy as np
import torch

from slotlab.data.splits import generate_split


def load_images(dataset: str, num: int = 16, split: str = "test", seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """The first ``num`` images of ``split`` ("train", "eval" or "test") of built-in ``dataset`` (``slotlab data
    list``) -> (uint8 images [num, H, W, 3], int64 instance masks [num, H, W] with 0 = background)."""
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive int, got {num!r}")
    d = generate_split(dataset, split, num, seed)
    return d["image"], torch.from_numpy(d["mask"].astype(np.int64))
