"""Names of the built-in procedural datasets and how to generate them (paper Section 4 datasets).

Each entry gives the image size, the largest instance label, and ``generate(seed, start, count)`` returning
the generator contract (``image`` uint8 [n, H, W, 3], ``mask`` uint8 [n, H, W] with 0 = background, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slotlab.data import tetrominoes


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_size: tuple[int, int]
    max_objects: int
    generate: Callable[[int, int, int], dict[str, np.ndarray]]
    description: str


_DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> None:
    _DATASETS[info.name] = info


def get_dataset(name: str) -> DatasetInfo:
    """Look up a built-in dataset; unknown names raise a ValueError that suggests the nearest ones."""
    if name not in _DATASETS:
        near = difflib.get_close_matches(name, list(_DATASETS), n=3)
        hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise ValueError(f"unknown dataset {name!r}.{hint} Built-in datasets: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def dataset_names() -> list[str]:
    return sorted(_DATASETS)


register(
    DatasetInfo(
        "tetrominoes",
        tetrominoes.IMAGE_SIZE,
        tetrominoes.MAX_OBJECTS,
        tetrominoes.generate,
        "35x35, 3 tetromino pieces, 6 colours, black background (DeepMind multi-object datasets form)",
    )
)
