"""Tests for slotlab.data.clevr_folder (CLEVR v1.0 folder -> set-prediction targets, paper Section 4.2).

Each test builds a tiny fake CLEVR_v1.0 folder in tmp_path with Pillow and json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slotlab.data.clevr_folder import ClevrFolder, collate_clevr, encode_clevr_objects
from slotlab.data.errors import DatasetFileError


def _obj(shape: str, size: str, material: str, color: str, coords: tuple[float, float, float]) -> dict:
    return {"shape": shape, "size": size, "material": material, "color": color, "3d_coords": list(coords),
            "rotation": 12.5, "pixel_coords": [10, 20, 8.5]}  # fmt: skip


SCENES = [
    [_obj("cube", "large", "metal", "red", (-3.0, 3.0, 0.7)),
     _obj("sphere", "small", "rubber", "cyan", (0.0, 1.5, 0.35)),
     _obj("cylinder", "large", "rubber", "gray", (1.2, -0.6, 0.7))],
    [_obj("sphere", "small", "metal", "blue", (2.0, -2.0, 0.35))] * 7,  # 7 objects: not in CLEVR6
    [_obj("cube", "small", "rubber", c, (0.3 * i, -0.3 * i, 0.35)) for i, c in
     enumerate(["gray", "blue", "brown", "yellow", "red", "green"])],  # 6 objects: in CLEVR6
]  # fmt: skip


def _make_clevr(tmp_path: Path, split: str = "val", scenes=SCENES, size=(480, 320)) -> Path:
    root = tmp_path / "CLEVR_v1.0"
    (root / "images" / split).mkdir(parents=True)
    (root / "scenes").mkdir()
    records = []
    for i, objects in enumerate(scenes):
        name = f"CLEVR_{split}_{i:06d}.png"
        rgba = np.zeros((size[1], size[0], 4), np.uint8)  # [H, W, 4] like the CLEVR renders
        rgba[..., 0] = 10 * (i + 1)
        rgba[..., 1] = (np.arange(size[0]) % 256).astype(np.uint8)[None, :]  # horizontal ramp, wraps at 256
        rgba[..., 2] = 200
        rgba[..., 3] = 255
        Image.fromarray(rgba, "RGBA").save(root / "images" / split / name)
        records.append({"split": split, "image_index": i, "image_filename": name, "objects": objects,
                        "directions": {}, "relationships": {}})  # fmt: skip
    (root / "scenes" / f"CLEVR_{split}_scenes.json").write_text(
        json.dumps({"info": {"split": split, "version": "1.0"}, "scenes": records})
    )
    return root


def test_encode_clevr_objects_values() -> None:
    target = encode_clevr_objects(SCENES[0])
    assert target.shape == (10, 19) and target.dtype == np.float32
    # Row layout: coords (3) | size (2) | material (2) | shape (3) | color (8, gray blue brown ...) | real (1)
    np.testing.assert_allclose(target[0], [0, 1, 3.7 / 6, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(
        target[1], [0.5, 0.75, 3.35 / 6, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], rtol=1e-6
    )
    np.testing.assert_allclose(
        target[2], [4.2 / 6, 2.4 / 6, 3.7 / 6, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1], rtol=1e-6
    )
    np.testing.assert_array_equal(target[3:], 0)
    # Colour order: gray, blue, brown, yellow, red, green, purple, cyan.
    colors = ["gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan"]
    t = encode_clevr_objects([_obj("cube", "small", "rubber", c, (0, 0, 0)) for c in colors], max_objects=8)
    np.testing.assert_array_equal(t[:, 10:18], np.eye(8))
    assert encode_clevr_objects([], max_objects=4).shape == (4, 19)


def test_encode_clevr_objects_errors() -> None:
    with pytest.raises(ValueError, match="unknown color 'pink'"):
        encode_clevr_objects([_obj("cube", "small", "rubber", "pink", (0, 0, 0))])
    with pytest.raises(ValueError, match="no 'material'"):
        encode_clevr_objects([{"shape": "cube", "size": "small", "color": "red", "3d_coords": [0, 0, 0]}])
    with pytest.raises(ValueError, match="more than max_objects=2"):
        encode_clevr_objects(SCENES[0], max_objects=2)


def test_dataset_items_and_resize(tmp_path: Path) -> None:
    _make_clevr(tmp_path)
    ds = ClevrFolder(tmp_path, "val")  # root may be the parent of CLEVR_v1.0 ...
    assert len(ds) == 3
    item = ds[0]
    assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.uint8
    assert item["target"].shape == (10, 19) and item["target"].dtype == torch.float32
    assert item["objects"] == SCENES[0] and item["index"] == 0
    np.testing.assert_array_equal(item["target"].numpy(), encode_clevr_objects(SCENES[0]))
    # Constant channels stay constant, the ramp is resized bilinearly without crop (half-pixel centres).
    assert (item["image"][0] == 10).all() and (item["image"][2] == 200).all()
    src_x = (np.arange(128) + 0.5) * 480 / 128 - 0.5  # sample positions in the 480-wide source
    lo = np.floor(src_x).astype(int)
    ramp = np.arange(480) % 256
    expected = ramp[lo] * (1 - (src_x - lo)) + ramp[np.minimum(lo + 1, 479)] * (src_x - lo)
    row = item["image"][1, 64].numpy().astype(np.float64)
    wrap = (lo % 256) == 255  # skip the two samples straddling the 255 -> 0 wrap of the ramp
    np.testing.assert_allclose(row[~wrap], np.round(expected[~wrap]), atol=1)
    # ... or the CLEVR_v1.0 folder itself; image_size is (H, W).
    ds2 = ClevrFolder(tmp_path / "CLEVR_v1.0", "val", image_size=(64, 96))
    assert ds2[2]["image"].shape == (3, 64, 96)
    assert ds2[2]["image"][0, 0, 0].item() == 30


def test_clevr6_filtering_and_collate(tmp_path: Path) -> None:
    _make_clevr(tmp_path)
    ds = ClevrFolder(tmp_path, "val", max_objects=6)
    assert len(ds) == 2
    assert [ds[i]["index"] for i in range(len(ds))] == [0, 2]
    assert ds[1]["target"][:, 18].tolist() == [1] * 6 + [0] * 4
    batch = collate_clevr([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 128, 128) and batch["target"].shape == (2, 10, 19)
    assert [len(o) for o in batch["objects"]] == [3, 6] and batch["index"].tolist() == [0, 2]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_clevr)
    first = next(iter(loader))
    assert torch.equal(first["target"], torch.stack([ds[0]["target"], ds[1]["target"]]))
    assert len(ClevrFolder(tmp_path, "val", max_objects=3)) == 1


def test_missing_folder_and_scenes(tmp_path: Path) -> None:
    with pytest.raises(DatasetFileError, match="not a CLEVR v1.0 folder") as info:
        ClevrFolder(tmp_path / "nowhere", "train")
    assert "nowhere" in str(info.value)
    root = _make_clevr(tmp_path)
    with pytest.raises(DatasetFileError, match=r"CLEVR_train_scenes.json: scenes file not found"):
        ClevrFolder(tmp_path, "train")
    with pytest.raises(DatasetFileError, match="test split"):
        ClevrFolder(tmp_path, "test")
    (root / "scenes" / "CLEVR_train_scenes.json").write_text('{"scenes": []}')
    with pytest.raises(DatasetFileError, match=r"images/train: image folder not found"):
        ClevrFolder(tmp_path, "train")
    (root / "scenes" / "CLEVR_val_scenes.json").write_text('{"scenes": [{"objects": [')
    with pytest.raises(DatasetFileError, match=r"CLEVR_val_scenes.json: not valid JSON"):
        ClevrFolder(tmp_path, "val")
    (root / "scenes" / "CLEVR_val_scenes.json").write_text('{"info": {}}')
    with pytest.raises(DatasetFileError, match="no top-level 'scenes' list"):
        ClevrFolder(tmp_path, "val")


def test_missing_and_truncated_png(tmp_path: Path) -> None:
    root = _make_clevr(tmp_path)
    ds = ClevrFolder(tmp_path, "val")
    missing = root / "images" / "val" / "CLEVR_val_000001.png"
    missing.unlink()
    with pytest.raises(DatasetFileError, match="image file not found") as info:
        ds[1]
    assert "CLEVR_val_000001.png" in str(info.value)
    truncated = root / "images" / "val" / "CLEVR_val_000002.png"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFileError, match="CLEVR_val_000002.png: cannot decode the PNG"):
        ds[2]
    truncated.write_bytes(b"not a png")
    with pytest.raises(DatasetFileError, match="CLEVR_val_000002.png: cannot decode the PNG"):
        ds[2]
    assert ds[0]["image"].shape == (3, 128, 128)  # the intact image still loads


def test_unknown_attribute_value(tmp_path: Path) -> None:
    scenes = [SCENES[0], [_obj("cone", "small", "rubber", "red", (0, 0, 0))]]
    _make_clevr(tmp_path, scenes=scenes)
    with pytest.raises(DatasetFileError, match=r"CLEVR_val_scenes.json: scene 1 .*unknown shape 'cone'"):
        ClevrFolder(tmp_path, "val")
    # A scene filtered out by max_objects is not validated.
    bad_big = [_obj("cube", "huge", "rubber", "red", (0, 0, 0))] * 8
    _make_clevr(tmp_path / "b", scenes=[SCENES[0], bad_big])
    assert len(ClevrFolder(tmp_path / "b", "val", max_objects=6)) == 1
    with pytest.raises(DatasetFileError, match="unknown size 'huge'"):
        ClevrFolder(tmp_path / "b", "val")
