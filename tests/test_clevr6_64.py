"""The CPU-sized CLEVR6 dataset ``clevr6_64`` (configs/clevr6_cpu.yaml): the reference crop scaled to a half-size
render, resized to 64x64, from the built-in renderer and from DeepMind's CLEVR file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slotlab.data import clevr_render
from slotlab.data.clevr_render import CROP, crop_slices, preprocess_clevr, preprocess_clevr_mask
from slotlab.data.registry import get_dataset

FIXTURES = Path(__file__).parent / "fixtures"


def test_crop_slices_are_the_reference_crop_at_full_size_and_scale_with_the_render():
    assert crop_slices(240, 320) == CROP
    rows, cols = crop_slices(120, 160)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (14, 110, 32, 128)  # 192/2 = 96 square
    rows, cols = crop_slices(480, 640)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (58, 442, 128, 512)
    for bad in ((120, 200), (121, 161), (240, 240)):
        with pytest.raises(ValueError, match="4:3"):
            crop_slices(*bad)


def test_a_half_size_render_crops_the_same_region():
    """The crop of a 2x2-average-pooled full render equals (to the half pixel the crop moves) the full crop pooled."""
    img = torch.rand(1, 240, 320, 3)
    half = torch.nn.functional.avg_pool2d(img.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)  # [1, 120, 160, 3]
    rows, cols = crop_slices(120, 160)
    full = img[:, 28:220, 64:256]  # the reference box moved up by one full-size pixel: exactly 2x the small box
    pooled = torch.nn.functional.avg_pool2d(full.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    torch.testing.assert_close(half[:, rows, cols], pooled)


def test_clevr6_64_dataset():
    info = get_dataset("clevr6_64")
    assert info.image_size == (64, 64) and info.max_objects == clevr_render.MAX_OBJECTS["clevr6"] and info.expensive
    a = info.generate(3, 5, 4)
    assert a["image"].shape == (4, 64, 64, 3) and a["image"].dtype == np.uint8
    assert a["mask"].shape == (4, 64, 64) and a["mask"].dtype == np.uint8
    assert ((3 <= a["num_objects"]) & (a["num_objects"] <= 6)).all()
    assert int(a["mask"].max()) <= 6 and (a["mask"] == 0).mean() > 0.3  # background: most of a CLEVR scene
    b = info.generate(3, 6, 2)  # deterministic per (seed, index)
    np.testing.assert_array_equal(a["image"][1:3], b["image"])
    np.testing.assert_array_equal(a["mask"][1:3], b["mask"])
    # the images are the renderer's output at 160x120, cropped and resized as the 128x128 dataset's
    raw = clevr_render.generate(3, 5, 1, variant="clevr6", image_size=(120, 160))
    x = preprocess_clevr(raw["image"], size=64)
    np.testing.assert_array_equal(((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1)[0], a["image"][0])
    np.testing.assert_array_equal(preprocess_clevr_mask(raw["mask"], size=64)[0], a["mask"][0])


def test_deepmind_clevr_file_is_resized_to_64_for_clevr6_64():
    from slotlab.data.files import load_tfrecord_split
    from slotlab.data.tfrecord import read_tfrecords

    path = FIXTURES / "clevr_with_masks_gzip.tfrecords"
    big = load_tfrecord_split(path, "clevr6", 0, 1)
    small = load_tfrecord_split(path, "clevr6_64", 0, 1)
    assert big["image"].shape == (1, 128, 128, 3) and small["image"].shape == (1, 64, 64, 3)
    assert small["mask"].shape == (1, 64, 64)
    ex = next(ex for ex in read_tfrecords(path, "clevr_with_masks") if _objects(ex["mask"]) <= 6)
    x = preprocess_clevr(ex["image"][None], size=64)
    np.testing.assert_array_equal(((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1), small["image"])


def _objects(mask: np.ndarray) -> int:
    return int((mask.reshape(mask.shape[0], -1).max(axis=1) > 0).sum()) - 1
