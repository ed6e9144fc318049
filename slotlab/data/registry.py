"""Names of the built-in procedural datasets and how to generate them (paper Section 4 datasets).

Each entry gives the image size, the largest instance label, and ``generate(seed, start, count)`` returning
the generator contract (``image`` uint8 [n, H, W, 3], ``mask`` uint8 [n, H, W] with 0 = background, ...).

Entries have a ``kind``: ``"image"`` (the paper's datasets) or ``"video"`` (clips: ``video`` uint8 [n, T, H, W, 3],
``mask`` [n, T, H, W], ``boxes``, ...; the arrays a cache keeps are the entry's ``keys``). :func:`get_dataset` looks
up image datasets unless asked for another kind (or any: ``kind=None``), so a video dataset is never read as one of
images.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from slotlab.data import clevr_render, moving_objects, multi_dsprites, tetrominoes
from slotlab.data.errors import UnknownDatasetError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_size: tuple[int, int]
    max_objects: int
    generate: Callable[[int, int, int], dict[str, np.ndarray]]
    description: str
    expensive: bool = False  # generated once into the on-disk cache (slotlab/data/cache.py), not in memory
    kind: str = "image"  # "image" or "video" (clips of frames)
    keys: tuple[str, ...] = ("image", "mask", "num_objects")  # the arrays a cache of it keeps


_DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> None:
    _DATASETS[info.name] = info


def get_dataset(name: str, kind: str | None = "image") -> DatasetInfo:
    """Look up a built-in dataset of ``kind`` ("image", "video"; None: any); unknown names raise
    UnknownDatasetError suggesting the nearest ones, a dataset of another kind says what it is."""
    names = dataset_names(kind)
    if name not in names:
        other = _DATASETS.get(name)
        if other is not None:
            article = "an" if str(kind)[:1] in tuple("aeiou") else "a"
            raise UnknownDatasetError(
                f"{name!r} is a built-in {other.kind} dataset, not {article} {kind} one. Built-in {kind} datasets: "
                f"{', '.join(names)}"
            )
        near = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        what = f"{kind} datasets" if kind else "datasets"
        raise UnknownDatasetError(f"unknown dataset {name!r}.{hint} Built-in {what}: {', '.join(names)}")
    return _DATASETS[name]


def dataset_names(kind: str | None = None) -> list[str]:
    """The built-in datasets of ``kind`` (None: all)."""
    return sorted(n for n, info in _DATASETS.items() if kind is None or info.kind == kind)


register(
    DatasetInfo(
        "tetrominoes",
        tetrominoes.IMAGE_SIZE,
        tetrominoes.MAX_OBJECTS,
        tetrominoes.generate,
        "35x35, 3 tetromino pieces, 6 colours, black background (DeepMind multi-object datasets form)",
    )
)


def _multi_dsprites(variant: str, seed: int, start: int, count: int) -> dict[str, np.ndarray]:
    return multi_dsprites.generate(seed, start, count, variant=variant)


for _variant, _name in (
    ("colored_on_grayscale", "multi_dsprites"),
    ("colored_on_colored", "multi_dsprites_colored_on_colored"),
    ("binarized", "multi_dsprites_binarized"),
):
    register(
        DatasetInfo(
            _name,
            multi_dsprites.IMAGE_SIZE,
            multi_dsprites.MAX_OBJECTS[_variant],
            functools.partial(_multi_dsprites, _variant),
            f"64x64 Multi-dSprites, {_variant.replace('_', ' ')} (DeepMind multi-object datasets form)",
        )
    )


def _clevr_cropped_scenes(
    variant: str, greyscale: bool, size: int, render: tuple[int, int], seed: int, start: int, count: int
) -> dict:
    """CLEVR-like scenes rendered at ``render`` (H, W), preprocessed as the reference code: the crop of rows 29:221
    and columns 64:256 of a 240x320 render (scaled to ``render``: ``clevr_render.crop_slices``), bilinear resize to
    ``size`` x ``size`` (masks: nearest)."""
    out = clevr_render.generate(seed, start, count, variant=variant, image_size=render, greyscale=greyscale)
    image = clevr_render.preprocess_clevr(out["image"], size=size)  # [n, 3, size, size] in [-1, 1]
    image = ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    mask = clevr_render.preprocess_clevr_mask(out["mask"], size=size)  # [n, size, size]
    return {
        "image": image.permute(0, 2, 3, 1).numpy(),
        "mask": np.asarray(mask, dtype=np.uint8),
        "num_objects": out["num_objects"],
    }


for _variant, _grey, _name, _size, _render, _how in (
    ("clevr6", False, "clevr6", 128, (240, 320), "rendered 320x240, cropped, resized to 128x128"),
    ("clevr10", False, "clevr10", 128, (240, 320), "rendered 320x240, cropped, resized to 128x128"),
    ("clevr6", True, "clevr6_greyscale", 128, (240, 320), "rendered 320x240, cropped, resized to 128x128"),
    # not a paper set: a CPU budget's CLEVR6 (half-size render, 4x cheaper; the same crop, resized to 64x64)
    ("clevr6", False, "clevr6_64", 64, (120, 160), "rendered 160x120, cropped, resized to 64x64 (CPU size)"),
):
    register(
        DatasetInfo(
            _name,
            (_size, _size),
            clevr_render.MAX_OBJECTS[_variant],
            functools.partial(_clevr_cropped_scenes, _variant, _grey, _size, _render),
            f"CLEVR-like {_variant}{' greyscale' if _grey else ''}: {_how}",
            expensive=True,
        )
    )


register(
    DatasetInfo(
        "moving_objects",
        moving_objects.IMAGE_SIZE,
        moving_objects.MAX_OBJECTS,
        moving_objects.generate,
        f"{moving_objects.IMAGE_SIZE[0]}x{moving_objects.IMAGE_SIZE[1]} videos of {moving_objects.NUM_FRAMES} "
        f"frames, {moving_objects.MIN_OBJECTS}-{moving_objects.MAX_OBJECTS} sprites moving, entering, leaving and "
        "occluding (SAVi-style clips with per-frame masks, boxes, flow)",
        kind="video",
        keys=("video", "mask", "boxes", "num_objects"),
    )
)
