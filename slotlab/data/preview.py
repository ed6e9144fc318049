"""`slotlab data show`: a PNG grid of dataset images with their instance masks overlaid, for a built-in
dataset (generated, or read from the cache for expensive ones) or a DeepMind TFRecord file."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from slotlab.errors import UsageError
from slotlab.viz import grid_image, save_png, slot_colors


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """image uint8 [H, W, 3], mask int [H, W] (0 = background) -> float [H, W, 3] with coloured objects."""
    img = image.astype(np.float32) / 255.0
    colors = np.concatenate([np.zeros((1, 3), np.float32), slot_colors(int(mask.max()) + 1)[1:]])
    tint = colors[mask]
    fg = (mask > 0)[..., None]
    return np.where(fg, (1 - alpha) * img + alpha * tint, img)


def preview(source: str, dataset: str | None = None, num: int = 16, seed: int = 0, out: str | None = None) -> Path:
    """Writes a grid: per image, the image and its mask overlay side by side. Returns the PNG path."""
    path = Path(source)
    if path.suffix in (".tfrecords", ".tfrecord") or path.exists():
        from slotlab.data.tfrecord import instance_masks, read_tfrecords

        if dataset is None:
            raise UsageError(f"{source} is a file: pass --dataset (e.g. tetrominoes, clevr_with_masks)")
        examples = list(itertools.islice(read_tfrecords(path, dataset), num))
        images = [np.repeat(e["image"], 3, -1) if e["image"].shape[-1] == 1 else e["image"] for e in examples]
        masks = [instance_masks(e["mask"]) for e in examples]
        name = path.stem
    else:
        from slotlab.data.registry import get_dataset
        from slotlab.data.splits import split_stream

        info = get_dataset(source, kind=None)
        data = info.generate(split_stream(seed, "train"), 0, num)
        if "video" in data:  # clips [n, T, ...]: every frame of each, in order (a row of 8 tiles = 4 frames)
            data = {
                "image": data["video"].reshape(-1, *data["video"].shape[2:]),
                "mask": data["mask"].reshape(-1, *data["mask"].shape[2:]),
            }
        images, masks, name = list(data["image"]), list(data["mask"].astype(np.int64)), source
    scale = max(1, 128 // images[0].shape[0])
    tiles = [
        np.kron(t, np.ones((scale, scale, 1)))
        for im, m in zip(images, masks, strict=True)
        for t in (im.astype(np.float32) / 255.0, overlay(im, m))
    ]
    per_row = 8
    rows = [tiles[i : i + per_row] for i in range(0, len(tiles), per_row)]
    return save_png(grid_image(rows), out or f"{name}.png")
