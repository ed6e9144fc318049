"""Caches of real data files are keyed by the files' content, not their path (slotlab.data.fingerprint): a CLEVR
v1.0 folder whose scenes were edited, or whose images were replaced or deleted after its cache was built, is read
again (a deleted image gives the reader's error) instead of evaluating to the old numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from test_clevr_folder import SCENES, _make_clevr

from slotlab.config import defaults_for
from slotlab.data.errors import DatasetFileError
from slotlab.data.fingerprint import content_key
from slotlab.tasks.set_prediction.data import load_split

EVAL_KEYS = ("image", "target", "num_objects")


def data_cfg(tmp_path: Path, root: Path) -> dict:
    d = dict(defaults_for("set_prediction")["data"])
    d.update(source="clevr_folder", path=str(root), variant="clevr6", train_size=2, eval_size=2, image_size=16)
    d.update(cache_dir=str(tmp_path / "cache"), workers=0, shard_size=2)
    return d


def cache_folders(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache").iterdir())


def test_edited_scenes_and_deleted_images_are_read_again(tmp_path):
    root = _make_clevr(tmp_path, "val")  # 3 scenes, of which 2 with <= 6 objects (clevr6)
    d = data_cfg(tmp_path, root)
    first = load_split(d, "eval", 2, EVAL_KEYS)
    assert torch.equal(load_split(d, "eval", 2, EVAL_KEYS)["target"], first["target"])  # unchanged: the cache
    (folder,) = cache_folders(tmp_path)

    scenes_path = root / "scenes" / "CLEVR_val_scenes.json"
    scenes = json.loads(scenes_path.read_text())
    scenes["scenes"][0]["objects"][0]["color"] = "green"  # was red: another target, same file size
    scenes_path.write_text(json.dumps(scenes))
    edited = load_split(d, "eval", 2, EVAL_KEYS)
    assert not torch.equal(edited["target"], first["target"])
    assert cache_folders(tmp_path) == [folder]  # rebuilt in place, not one more folder per version

    (root / "images" / "val" / "CLEVR_val_000002.png").unlink()  # the second clevr6 scene's image
    with pytest.raises(DatasetFileError, match="CLEVR_val_000002.png: image file not found"):
        load_split(d, "eval", 2, EVAL_KEYS)


def test_replaced_image_is_read_again(tmp_path):
    root = _make_clevr(tmp_path, "val")
    d = data_cfg(tmp_path, root)
    before = load_split(d, "eval", 2, EVAL_KEYS)["image"]
    other = _make_clevr(tmp_path / "other", "val", scenes=[SCENES[2]] * 3)  # other pixels (red channel 10 * (i+1))
    os.replace(other / "images" / "val" / "CLEVR_val_000002.png", root / "images" / "val" / "CLEVR_val_000000.png")
    after = load_split(d, "eval", 2, EVAL_KEYS)["image"]
    assert not torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])


def test_content_key(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"1")
    (tmp_path / "s.json").write_text("{}")
    key = content_key([tmp_path / "s.json"], [tmp_path / "imgs"])
    assert key == content_key([tmp_path / "s.json"], [tmp_path / "imgs"])
    st = (tmp_path / "s.json").stat()
    (tmp_path / "s.json").write_text("[]")  # same size, same modification time: the bytes differ
    os.utime(tmp_path / "s.json", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert content_key([tmp_path / "s.json"], [tmp_path / "imgs"]) != key
    (tmp_path / "imgs" / "a.png").unlink()
    assert content_key([tmp_path / "missing.json"], [tmp_path / "missing"])  # missing paths: a key, no error
