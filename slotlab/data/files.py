"""Training and evaluation images from the real DeepMind multi-object TFRecord files (paper Section 4.1 data).

Maps slotlab's dataset names to the DeepMind files and applies the reference preprocessing: CLEVR (with
masks) is cropped to rows 29:221 and columns 64:256 and resized to 128x128 (``clevr6_64``: 64x64; masks:
nearest), CLEVR6 keeps the scenes with at most 6 objects, greyscale CLEVR takes the luminance; binarized
Multi-dSprites' single channel is repeated to RGB. Splits follow the paper: training uses the first
``train_size`` images (60k / 70k in the paper), evaluation the ``eval_size`` images that follow them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from slotlab.data.clevr_render import preprocess_clevr, preprocess_clevr_mask
from slotlab.data.errors import DatasetFileError
from slotlab.data.tfrecord import instance_masks, read_tfrecords

# slotlab dataset name -> (DeepMind dataset name, max objects filter, greyscale)
TFRECORD_NAMES: dict[str, tuple[str, int | None, bool]] = {
    "tetrominoes": ("tetrominoes", None, False),
    "multi_dsprites": ("multi_dsprites_colored_on_grayscale", None, False),
    "multi_dsprites_colored_on_colored": ("multi_dsprites_colored_on_colored", None, False),
    "multi_dsprites_binarized": ("multi_dsprites_binarized", None, False),
    "clevr6": ("clevr_with_masks", 6, False),
    "clevr10": ("clevr_with_masks", None, False),
    "clevr6_greyscale": ("clevr_with_masks", 6, True),
    "clevr6_64": ("clevr_with_masks", 6, False),  # resized to 64x64 instead of 128x128
}


def _examples(path: Path, name: str):
    if name not in TFRECORD_NAMES:
        raise DatasetFileError(
            f"data.path is set but dataset {name!r} has no DeepMind TFRecord file; use one of {sorted(TFRECORD_NAMES)}"
        )
    dataset, max_objects, _ = TFRECORD_NAMES[name]
    for ex in read_tfrecords(path, dataset):
        if max_objects is not None:
            present = int((ex["mask"].reshape(ex["mask"].shape[0], -1).max(axis=1) > 0).sum()) - 1
            if present > max_objects:
                continue
        yield ex


def load_tfrecord_split(path: str | Path, name: str, start: int, count: int) -> dict[str, np.ndarray]:
    """Images ``start .. start + count - 1`` (after filtering) of a DeepMind file, in slotlab's form:
    image uint8 [n, H, W, 3], mask uint8 [n, H, W] (0 = background)."""
    path = Path(path)
    examples, usable = [], 0  # usable: records of the file read so far (the true count when it runs short)
    for ex in itertools.islice(_examples(path, name), start + count):
        if usable >= start:
            examples.append(ex)
        usable += 1
    if len(examples) < count:
        raise DatasetFileError(
            f"{path} has only {usable} usable {name} records; need {start + count} "
            f"(data.train_size + data.eval_size). Lower them or use the full file."
        )
    image = np.stack([ex["image"] for ex in examples])  # [n, H, W, C]
    mask = np.stack([instance_masks(ex["mask"]) for ex in examples]).astype(np.uint8)  # [n, H, W]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    _, _, greyscale = TFRECORD_NAMES[name]
    if TFRECORD_NAMES[name][0] == "clevr_with_masks":
        if greyscale:
            lum = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            image = np.repeat(lum.round().clip(0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        from slotlab.data.registry import get_dataset

        size = get_dataset(name).image_size[0]  # 128 (the paper's), 64 for clevr6_64
        x = preprocess_clevr(image, size=size)  # [n, 3, size, size] in [-1, 1]
        image = ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        mask = np.asarray(preprocess_clevr_mask(mask, size=size), dtype=np.uint8)
    return {"image": image, "mask": mask}
