"""Data of the video task: clips with per-frame ground truth from the built-in moving-objects generator
(:mod:`slotlab.data.moving_objects`, generated in memory like the image generators) or from Kubric's MOVi TFRecords
(:mod:`slotlab.data.movi`, decoded once into the shard cache of :mod:`slotlab.data.shards`).

Every split is a dict of tensors, one row per clip (T frames of S x S, M = ``data.max_objects``):

    image  uint8   [n, T, 3, S, S]   the frames (the model's input; ``image`` as in every task)
    mask   uint8   [n, T, S, S]      instance ids per frame, 0 = background, object i -> i + 1
    boxes  float32 [n, T, M, 4]      (ymin, xmin, ymax, xmax) in [0, 1] per frame; zeros where an object is not
                                     visible (SAVi's NOTRACK_BOX); a conditional model reads frame 0's
    flow   uint8   [n, T, 3, S, S]   backward optical flow (to the previous frame, as SAVi reads MOVi's
                                     ``backward_flow``; the generator's flow of every frame, frame 0's too) drawn as
                                     RGB (SAVi's ``flow_to_rgb``); only for ``flow`` targets

MOVi as SAVi-S reads it: ``backward_flow``, frames resized to S x S with
bilinear interpolation (no antialiasing; masks nearest), flow scaled by the resize; training clips are every
non-overlapping window of ``num_frames`` frames of a video (SAVi draws one window per video and epoch: the same
distribution); held-out clips are the first ``eval_num_frames`` frames (SAVi: all 24). Splits: the folder's
``train`` shards for training, ``validation`` for eval, ``test`` for test (a single shard file serves every split).
Deviation: the resized frames are stored as uint8 (SAVi keeps floats), a rounding of at most half a grey level.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slotlab.data import moving_objects, shards
from slotlab.data.datamodule import StepDataModule
from slotlab.data.errors import DatasetFileError
from slotlab.data.movi import count_videos, flow_pixels, read_movi, shard_files
from slotlab.data.splits import split_stream
from slotlab.errors import ConfigError

CACHE_FORMAT = 1
SHARD = 64  # videos per MOVi cache shard
MOVI_SPLITS = {"train": "train", "eval": "validation", "test": "test"}
FLOW_SCALE = 50.0  # SAVi's flow_to_rgb(flow_scaling_factor=50)


# ------------------------------------------------------------------------------------------------ conversions
def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] -> RGB [..., 3] in [0, 1], as ``tf.image.hsv_to_rgb``."""
    dh = h * 6.0
    r = np.clip(np.abs(dh - 3.0) - 1.0, 0.0, 1.0)
    g = np.clip(2.0 - np.abs(dh - 2.0), 0.0, 1.0)
    b = np.clip(2.0 - np.abs(dh - 4.0), 0.0, 1.0)
    return np.stack([v * (1 - s + s * c) for c in (r, g, b)], axis=-1)


def flow_to_rgb(flow: np.ndarray) -> np.ndarray:
    """Flow float [..., H, W, 2] (pixels) -> uint8 [..., H, W, 3], SAVi's ``flow_tensor_to_rgb_tensor``: hue from
    ``atan2(f1, f0)``, saturation ``|f| * 50 / hypot(H, W)`` clipped to 1, value 1; uint8 as
    ``tf.image.convert_image_dtype`` (``floor(x * 255.5)``)."""
    h, w = flow.shape[-3:-1]
    x, y = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    hue = (np.arctan2(y, x) / np.pi + 1.0) / 2.0
    sat = np.clip(np.hypot(x, y) * (FLOW_SCALE / np.hypot(h, w)), 0.0, 1.0)
    rgb = hsv_to_rgb(hue, sat, np.ones_like(hue))
    return np.floor(rgb * 255.5).clip(0, 255).astype(np.uint8)


def _resize(x: np.ndarray, size: int, mode: str) -> np.ndarray:
    """[T, H, W, C] -> [T, S, S, C] float32 (bilinear without antialiasing = tf.image.resize; nearest-exact = its
    nearest with half-pixel centres)."""
    if x.shape[1:3] == (size, size):
        return x.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(0, 3, 1, 2)  # [T, C, H, W]
    kwargs = {"align_corners": False, "antialias": False} if mode == "bilinear" else {}
    y = F.interpolate(t, size=(size, size), mode=mode, **kwargs)
    return y.permute(0, 2, 3, 1).numpy()  # [T, S, S, C]


def channels_first(x: np.ndarray) -> np.ndarray:
    """[..., H, W, C] -> [..., C, H, W], contiguous."""
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


# ------------------------------------------------------------------------------------------------ generator
def generator_spec(data_cfg: dict[str, Any], split: str, frames: int, flow: bool) -> dict[str, Any]:
    return {
        "source": "moving_objects",
        "stream": split_stream(int(data_cfg["seed"]), split),
        "num_frames": int(frames),
        "image_size": int(data_cfg["image_size"]),
        "min_objects": int(data_cfg["min_objects"]),
        "max_objects": int(data_cfg["max_objects"]),
        "bounce": bool(data_cfg["bounce"]),
        "enter_prob": float(data_cfg["enter_prob"]),
        "flow": bool(flow),
    }


def generator_clips(spec: dict[str, Any], start: int, count: int) -> dict[str, np.ndarray]:
    """Clips ``start .. start + count - 1`` of a generator spec (:func:`generator_spec`), as the module docstring."""
    d = moving_objects.generate(
        spec["stream"], start, count, spec["num_frames"], spec["image_size"], spec["min_objects"],
        spec["max_objects"], spec["bounce"], spec["enter_prob"],
    )  # fmt: skip
    out = {
        "image": channels_first(d["video"]),  # [n, T, 3, S, S]
        "mask": d["mask"],  # [n, T, S, S]
        "boxes": d["boxes"],  # [n, T, M, 4]
        "num_objects": d["num_objects"],  # [n]
    }
    if spec["flow"]:
        out["flow"] = channels_first(flow_to_rgb(d["backward_flow"]))  # [n, T, 3, S, S]
    return out


def _worker_init() -> None:
    torch.set_num_threads(1)


def generate_clips(spec: dict[str, Any], count: int, workers: int = 1) -> dict[str, np.ndarray]:
    """All ``count`` clips of a generator spec, in chunks of the generator's latent chunk, over ``workers``
    processes (the same clips for any number)."""
    step = moving_objects.CHUNK
    jobs = [(start, min(step, count - start)) for start in range(0, count, step)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs)), initializer=_worker_init) as pool:
            parts = list(pool.map(functools.partial(_clips_job, spec), jobs))
    else:
        parts = [generator_clips(spec, start, n) for start, n in jobs]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _clips_job(spec: dict[str, Any], job: tuple[int, int]) -> dict[str, np.ndarray]:
    return generator_clips(spec, *job)


# ------------------------------------------------------------------------------------------------ MOVi
def movi_video(example: dict, size: int, max_objects: int, flow: bool) -> dict[str, np.ndarray]:
    """One decoded MOVi record (:func:`slotlab.data.movi.read_movi`) -> the arrays of one video at S x S, with
    SAVi-S's preprocessing (module docstring): image, mask, boxes [T, M, 4] (the first M objects; ids above M are
    background, as SAVi's ``sparse_to_dense_annotation``) and, with ``flow``, the backward flow as RGB."""
    video = example["video"]  # [T, H, W, 3] uint8
    t, h, w = video.shape[:3]
    frames = _resize(video, size, "bilinear").round().clip(0, 255).astype(np.uint8)  # [T, S, S, 3]
    mask = example["segmentations"][..., :1]  # [T, H, W, 1]
    mask = _resize(mask, size, "nearest-exact")[..., 0].astype(np.int64)  # [T, S, S]
    mask = np.where(mask <= max_objects, mask, 0).astype(np.uint8)
    boxes = np.zeros((t, max_objects, 4), dtype=np.float32)
    instances = example["instances"]
    for i, (b, f) in enumerate(zip(instances["bboxes"], instances["bbox_frames"], strict=True)):
        if i == max_objects:
            break
        if f.size and (f.min() < 0 or f.max() >= t):
            raise DatasetFileError(f"video {example['metadata'].get('video_name')!r}: object {i} has boxes for "
                                   f"frames {f.tolist()}, outside its {t} frames")  # fmt: skip
        boxes[f, i] = b  # loop over the few objects
    out = {"image": channels_first(frames), "mask": mask, "boxes": boxes}
    if flow:
        pixels = flow_pixels(example["backward_flow"], example["metadata"]["backward_flow_range"])  # [T, H, W, 2]
        resized = _resize(pixels, size, "bilinear") * np.array([size / h, size / w], np.float32)
        out["flow"] = channels_first(flow_to_rgb(resized))  # [T, 3, S, S]
    return out


def movi_spec(data_cfg: dict[str, Any], split: str, flow: bool) -> dict[str, Any]:
    """What a MOVi cache folder holds: the shard files (path, size, modification time), the split, the size."""
    path = data_cfg.get("path")
    if not path:
        raise ConfigError("data.name is movi but data.path is not set: give the TFDS folder of a MOVi dataset "
                          "(e.g. movi_a/128x128/1.0.0) or one of its .tfrecord shard files")  # fmt: skip
    files = shard_files(path, MOVI_SPLITS[split])
    content = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    return {
        "format": CACHE_FORMAT,
        "source": "movi",
        "path": str(Path(path).resolve()),
        "split": MOVI_SPLITS[split],
        "files": content,
        "image_size": int(data_cfg["image_size"]),
        "max_objects": int(data_cfg["max_objects"]),
        "flow": bool(flow),
    }


def _movi_shard(spec: dict[str, Any], start: int, count: int) -> dict[str, np.ndarray]:
    """Videos ``start .. start + count - 1`` of a MOVi spec's split (its shards read as one stream)."""
    size, m, flow = spec["image_size"], spec["max_objects"], spec["flow"]
    examples = read_movi(spec["path"], spec["split"], start=start, count=count)
    videos = [movi_video(e, size, m, flow) for e in examples]
    if len(videos) < count:
        raise DatasetFileError(
            f"{spec['path']}: the {spec['split']} split has {start + len(videos)} videos, fewer than the "
            f"{start + count} asked for; lower data.train_size / data.eval_size"
        )
    lengths = sorted({v["image"].shape[0] for v in videos})
    if len(lengths) > 1:
        raise DatasetFileError(f"{spec['path']}: MOVi videos of different lengths {lengths} in one split")
    out = {k: np.stack([v[k] for v in videos]) for k in videos[0]}
    out["num_objects"] = np.array([int(v["mask"].max()) for v in videos], dtype=np.int64)
    return out


def movi_arrays(data_cfg: dict[str, Any], split: str, count: int, flow: bool) -> dict[str, np.ndarray]:
    """The first ``count`` videos of a MOVi split at S x S (all of them if it has fewer), decoded once into the
    shard cache, then read from it."""
    spec = movi_spec(data_cfg, split, flow)
    count = min(count, count_videos(spec["path"], spec["split"]))  # data.train_size / eval_size: at most
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    name = f"movi-{spec['split']}-{spec['image_size']}px-{key}"
    folder = shards.cache_root(data_cfg.get("cache_dir")) / "video" / name
    keys = ("image", "mask", "boxes", "num_objects", *(("flow",) if flow else ()))
    produce = functools.partial(_movi_shard, spec)
    shards.build_cache(folder, spec, count, SHARD, produce, keys, workers=_workers(data_cfg))
    return shards.load_cache(folder, count, keys)


PER_FRAME = ("image", "mask", "boxes", "flow")  # keys with a time axis (axis 1)


def windows(arrays: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
    """Videos [n, T, ...] -> every non-overlapping window of ``length`` frames [n * (T // length), length, ...]
    (video-major: the windows of video 0, then of video 1, ...)."""
    t = arrays["image"].shape[1]
    per = t // length
    out = {}
    for k, v in arrays.items():
        if k in PER_FRAME:
            v = v[:, : per * length]
            out[k] = np.ascontiguousarray(v.reshape(v.shape[0] * per, length, *v.shape[2:]))
        else:
            out[k] = np.repeat(v, per, axis=0)
    return out


def _workers(data_cfg: dict[str, Any]) -> int:
    return int(data_cfg.get("workers") or 0) or os.cpu_count() or 1


def clip_frames(data_cfg: dict[str, Any], split: str) -> int:
    """Frames of a clip of ``split``: ``num_frames`` for training, ``eval_num_frames`` (or that) held out."""
    if split == "train" or data_cfg.get("eval_num_frames") is None:
        return int(data_cfg["num_frames"])
    return int(data_cfg["eval_num_frames"])


def load_split(data_cfg: dict[str, Any], split: str, count: int, flow: bool = False) -> dict[str, torch.Tensor]:
    """The first ``count`` clips of ``split`` ("train", "eval", "test") as tensors (module docstring); MOVi: the first
    ``count`` videos, cut into training windows or cropped to the held-out length."""
    if count < 1:
        raise ConfigError(f"the number of clips must be >= 1, got {count}")
    frames = clip_frames(data_cfg, split)
    if data_cfg["name"] == "moving_objects":
        arrays = generate_clips(generator_spec(data_cfg, split, frames, flow), count, _workers(data_cfg))
    else:
        arrays = movi_arrays(data_cfg, split, count, flow)
        t = arrays["image"].shape[1]
        if frames > t:
            key = "num_frames" if split == "train" else "eval_num_frames"
            raise ConfigError(f"data.{key} is {frames} but the MOVi videos at {data_cfg['path']} have {t} frames")
        if split == "train":
            arrays = windows(arrays, frames)
        else:
            arrays = {k: (v[:, :frames] if k in PER_FRAME else v) for k, v in arrays.items()}
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


class VideoData(StepDataModule):
    """Training clips and held-out clips of a video config (module docstring). Training batches as every task's
    (:class:`~slotlab.data.datamodule.StepBatches`: a function of data seed and step); ``flow`` is loaded when the
    model reconstructs it."""

    def __init__(self, data_cfg: dict[str, Any], flow: bool = False) -> None:
        super().__init__(data_cfg["batch_size"], data_cfg["eval_batch_size"], data_cfg["seed"])
        self.cfg = dict(data_cfg)
        self.flow = flow
        if self.cfg["batch_size"] > self.cfg["train_size"] and self.cfg["name"] == "moving_objects":
            raise ConfigError(f"data.batch_size {self.cfg['batch_size']} is larger than the training set "
                              f"(data.train_size {self.cfg['train_size']})")  # fmt: skip

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: MOVi caches are built once.
        if self.cfg["name"] == "movi":
            movi_arrays(self.cfg, "eval", self.cfg["eval_size"], self.flow)
            if self.trainer is None or self.trainer.state.fn in (None, "fit"):
                movi_arrays(self.cfg, "train", self.cfg["train_size"], self.flow)

    def setup(self, stage: str | None = None) -> None:
        if self.eval is None:
            self.eval = load_split(self.cfg, "eval", self.cfg["eval_size"], self.flow)
        if stage in (None, "fit") and self.train is None:
            self.train = load_split(self.cfg, "train", self.cfg["train_size"], self.flow)
