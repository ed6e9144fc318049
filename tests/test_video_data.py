"""The video task's data (slotlab/tasks/video/data.py): generator clips, MOVi clips from the TFDS-written fixture
(resized, windows, backward flow as RGB), SAVi's flow_to_rgb, and the cache of decoded MOVi videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slotlab.data import moving_objects as mo
from slotlab.data.movi import flow_pixels, read_movi
from slotlab.data.splits import split_stream
from slotlab.errors import ConfigError
from slotlab.tasks.video.data import flow_to_rgb, load_split, movi_video, windows
from slotlab.tasks.video.schema import SCHEMA

MOVI_A = Path(__file__).parent / "fixtures" / "movi" / "movi_a-train.tfrecord-00000-of-00001"


def data_cfg(**changes) -> dict:
    d = SCHEMA.defaults()["data"]
    d.update({"image_size": 16, "num_frames": 3, "workers": 1, **changes})
    return d


def test_flow_to_rgb_by_hand():
    """Zero flow is white (saturation 0); a flow of hypot(H, W) / 50 pixels is fully saturated: along +f0 the hue
    is (atan2(0, 1) / pi + 1) / 2 = 0.5 (cyan), along -f0 it is 1.0 (red)."""
    h = w = 10
    full = np.hypot(h, w) / 50.0
    flow = np.zeros((h, w, 2), np.float32)
    flow[0, 0] = (full, 0.0)  # hue 0.5: cyan (0, 255, 255)
    flow[0, 1] = (-full, 0.0)  # hue 1.0 (== 0): red
    flow[0, 2] = (full / 2, 0.0)  # half saturation, cyan: R = 1 - 0.5
    rgb = flow_to_rgb(flow)
    assert rgb.dtype == np.uint8 and rgb.shape == (h, w, 3)
    assert rgb[5, 5].tolist() == [255, 255, 255]
    assert rgb[0, 0].tolist() == [0, 255, 255]
    assert rgb[0, 1].tolist() == [255, 0, 0]
    assert rgb[0, 2].tolist() == [127, 255, 255]  # floor(0.5 * 255.5), tf.image.convert_image_dtype


def test_generator_clips_are_deterministic_and_shaped():
    a = load_split(data_cfg(), "train", 300, flow=True)
    b = load_split(data_cfg(workers=2), "train", 300, flow=True)  # two generator chunks, two processes
    assert a["image"].shape == (300, 3, 3, 16, 16) and a["mask"].shape == (300, 3, 16, 16)
    assert a["boxes"].shape == (300, 3, 5, 4) and a["flow"].shape == (300, 3, 3, 16, 16)
    for k in a:
        assert (a[k] == b[k]).all(), k
    # The flow target is the generator's backward flow drawn as RGB (SAVi reads MOVi's backward flow): every frame
    # of a clip shows its objects' motion, the last one too (the forward flow has none there: no next frame).
    cfg = data_cfg()
    raw = mo.generate(split_stream(cfg["seed"], "train"), 0, 300, 3, 16, cfg["min_objects"], cfg["max_objects"],
                      cfg["bounce"], cfg["enter_prob"])  # fmt: skip
    want = torch.from_numpy(flow_to_rgb(raw["backward_flow"])).permute(0, 1, 4, 2, 3)
    assert torch.equal(a["flow"], want)
    moving = (a["flow"] < 250).any(2) & (a["mask"] > 0)  # [n, T, S, S] object pixels drawn with colour (motion)
    assert moving[:, -1].any(dim=(1, 2)).float().mean() > 0.9
    held = load_split(data_cfg(eval_num_frames=5), "eval", 2)
    assert held["image"].shape[1] == 5 and "flow" not in held
    assert not (held["image"][:, :3] == a["image"][:2]).all()  # another stream


def test_windows_cut_videos_into_clips():
    arrays = {"image": np.arange(2 * 6).reshape(2, 6), "num_objects": np.array([3, 4])}
    w = windows(arrays, 2)
    assert w["image"].tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert w["num_objects"].tolist() == [3, 3, 3, 4, 4, 4]


def test_movi_clips_from_the_fixture(tmp_path):
    cfg = data_cfg(name="movi", path=str(MOVI_A), num_frames=1, eval_num_frames=3, max_objects=3, image_size=8,
                   cache_dir=str(tmp_path))  # fmt: skip
    train = load_split(cfg, "train", 2, flow=True)
    assert train["image"].shape == (6, 1, 3, 8, 8)  # 2 videos x 3 windows of 1 frame
    held = load_split(cfg, "eval", 2)
    assert held["image"].shape == (2, 3, 3, 8, 8) and held["boxes"].shape == (2, 3, 3, 4)
    example = next(read_movi(MOVI_A))
    video = movi_video(example, 8, 3, flow=True)
    np.testing.assert_array_equal(held["image"][0].numpy(), video["image"])
    # Boxes: the record's per-object boxes at their frames, zeros elsewhere, the first 3 objects only.
    for i, (b, f) in enumerate(
        zip(example["instances"]["bboxes"][:3], example["instances"]["bbox_frames"], strict=False)
    ):
        np.testing.assert_allclose(video["boxes"][f, i], b)
    assert video["mask"].max() <= 3  # ids above max_objects are background (SAVi's densify)
    # Flow: SAVi's backward flow, resized and scaled by the size ratio, then drawn as RGB.
    pixels = flow_pixels(example["backward_flow"], example["metadata"]["backward_flow_range"])
    assert pixels.shape[1:3] == (16, 16)
    assert video["flow"].shape == (3, 3, 8, 8)
    # The cache is reused: the same tensors come back from the shards.
    again = load_split(cfg, "eval", 2)
    assert all((again[k] == held[k]).all() for k in held)
    assert list((tmp_path / "video").iterdir())


def test_movi_needs_a_path_and_enough_frames(tmp_path):
    with pytest.raises(ConfigError, match="data.path is not set"):
        load_split(data_cfg(name="movi", cache_dir=str(tmp_path)), "eval", 1)
    cfg = data_cfg(name="movi", path=str(MOVI_A), num_frames=4, cache_dir=str(tmp_path), image_size=8)
    with pytest.raises(ConfigError, match="data.num_frames is 4 but the MOVi videos"):
        load_split(cfg, "train", 1)


def test_the_registry_caches_the_video_generator_with_its_own_keys(tmp_path):
    from slotlab.data.cache import cached_split, split_spec
    from slotlab.data.registry import dataset_names, get_dataset

    assert "moving_objects" in dataset_names("video") and "moving_objects" not in dataset_names("image")
    assert get_dataset("moving_objects", kind="video").keys == ("video", "mask", "boxes", "num_objects")
    assert "kind" not in split_spec("tetrominoes", "train", 0)  # image caches keep their spec (and their files)
    data = cached_split("moving_objects", "train", 3, cache_dir=tmp_path, workers=1)
    assert set(data) == {"video", "mask", "boxes", "num_objects"} and data["video"].shape == (3, 6, 64, 64, 3)


def test_movi_folder_counts_its_videos_from_dataset_info(tmp_path):
    import json
    import shutil

    from slotlab.data.movi import count_videos

    folder = tmp_path / "movi_a" / "128x128" / "1.0.0"
    folder.mkdir(parents=True)
    shutil.copy(MOVI_A, folder / "movi_a-train.tfrecord-00000-of-00001")
    assert count_videos(folder, "train") == 2  # counted from the records
    info = {"splits": [{"name": "train", "shardLengths": ["7"]}, {"name": "validation", "shardLengths": ["1"]}]}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    assert count_videos(folder, "train") == 7  # TFDS's own count, nothing read
    (folder / "dataset_info.json").write_text("{not json")
    assert count_videos(folder, "train") == 2
