"""Data of the set-prediction experiments (paper Sections 2.3, 4.2): CLEVR10 / CLEVR6 images and property targets.

Two sources, one format. Either source is converted once into a cache folder of ``.npz`` shards holding

    image   uint8   [n, 3, S, S]   the full image resized bilinearly to S x S (no crop: the reference
                                   set-prediction preprocessing; S = 128 in the paper)
    target  float32 [n, M, 19]     ``encode_clevr_objects`` (zero-padded to M = 6 (clevr6) or 10 (clevr10) rows)
    mask    uint8   [n, S, S]      instance labels (0 = background, object j = j + 1), nearest resize;
                                   procedural source only (CLEVR v1.0 has no masks)
    num_objects int64 [n]

* ``source: procedural``: the CLEVR-like renderer (:mod:`slotlab.data.clevr_render`), split streams from
  :mod:`slotlab.data.splits` (train / eval are disjoint). The cache key includes a hash of the renderer's
  source, so a changed renderer never reuses stale images.
* ``source: clevr_folder``: the real CLEVR v1.0 folder (:class:`slotlab.data.clevr_folder.ClevrFolder`),
  ``train`` for training and ``val`` (the paper's 15k validation images) for evaluation; ``clevr6`` keeps the
  scenes with at most 6 objects. Its cache is keyed by the folder's content as well as its path (the scenes
  file's bytes, every image's name, size and modification time), so edited or deleted files are read again.

The cache folders are :mod:`slotlab.data.shards` caches (the one shard cache of both tasks): validated by the
spec in their manifest, resumable after a killed build, repaired when a shard is truncated or unreadable.

Training batches come from :class:`slotlab.data.datamodule.StepBatches` (a pure function of data seed and step,
so resumed runs see the same batches); the whole split is held in memory as uint8.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from slotlab.data import shards
from slotlab.data.clevr_folder import ClevrFolder, collate_clevr, encode_clevr_objects, folder_content_key
from slotlab.data.datamodule import StepDataModule
from slotlab.data.errors import DatasetFileError
from slotlab.data.shards import MANIFEST, cache_root, cache_status, renderer_version  # noqa: F401
from slotlab.data.splits import split_stream
from slotlab.errors import ConfigError

TARGET_ROWS = {"clevr3": 3, "clevr6": 6, "clevr10": 10}
FOLDER_SPLITS = {"train": "train", "eval": "val"}
CACHE_FORMAT = 1
SOURCES = ("procedural", "clevr_folder")


def resize_images(image: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> uint8 [n, 3, size, size]: bilinear, half-pixel centres, no antialiasing, no crop
    (``tf.image.resize`` of the reference code; the same resize as ``ClevrFolder``)."""
    x = torch.as_tensor(image).permute(0, 3, 1, 2)  # [n, 3, H, W]
    if tuple(x.shape[-2:]) == (size, size):
        return x.contiguous()
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return y.round().clamp(0, 255).to(torch.uint8)  # [n, 3, S, S]


def resize_masks(mask: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Instance labels [n, H, W] -> [n, size, size] by nearest-neighbour resize (dtype kept)."""
    x = torch.as_tensor(mask)
    if tuple(x.shape[-2:]) == (size, size):
        return x.contiguous()
    return F.interpolate(x[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(x.dtype)


# ----------------------------------------------------------------------------------------------------------
# cache folders
def cache_spec(data_cfg: dict[str, Any], split: str) -> dict[str, Any]:
    """The parameters that determine a cache folder's content (everything but the image count)."""
    source, variant = data_cfg["source"], data_cfg["variant"]
    if source not in SOURCES:
        raise ConfigError(f"data.source must be one of {SOURCES}, got {source!r}")
    if variant not in TARGET_ROWS:
        raise ConfigError(f"data.variant must be one of {sorted(TARGET_ROWS)}, got {variant!r}")
    if split not in ("train", "eval", "test"):
        raise ValueError(f"split must be 'train', 'eval' or 'test', got {split!r}")
    if split == "test" and source == "clevr_folder":
        raise ConfigError(
            "CLEVR v1.0's test split has no scene annotations, so it cannot be scored; the held-out split of "
            "data.source clevr_folder is 'eval' (CLEVR's val)"
        )
    spec: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "source": source,
        "variant": variant,
        "split": split,
        "image_size": int(data_cfg["image_size"]),
    }
    if source == "procedural":
        spec.update(
            stream=split_stream(int(data_cfg["seed"]), split),
            render_size=[int(v) for v in data_cfg["render_size"]],
            renderer=renderer_version(),
        )
    else:
        if not data_cfg.get("path"):
            raise DatasetFileError("data.source is 'clevr_folder' but data.path is not set (the CLEVR v1.0 folder)")
        spec.update(path=str(Path(data_cfg["path"]).resolve()), folder_split=FOLDER_SPLITS[split])
    return spec


def cache_folder(cache_dir: str | os.PathLike[str], spec: dict[str, Any]) -> Path:
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{spec['source']}-{spec['variant']}-{spec['split']}-{spec['image_size']}px-{key}"
    return Path(cache_dir) / name


def _render_shard(spec: dict[str, Any], start: int, n: int) -> dict[str, np.ndarray]:
    from slotlab.data import clevr_render

    out = clevr_render.generate(
        spec["stream"], start, n, variant=spec["variant"], image_size=tuple(spec["render_size"])
    )
    return renders_to_examples(out, spec["variant"], spec["image_size"])


def renders_to_examples(out: dict[str, np.ndarray], variant: str, size: int) -> dict[str, np.ndarray]:
    """``clevr_render.generate``'s output as the task's examples (the cache shards' arrays, module docstring):
    image resized to ``size`` x ``size``, ``variant``'s target rows, mask, num_objects."""
    from slotlab.data import clevr_render

    rows = TARGET_ROWS[variant]
    n = len(out["num_objects"])
    target = np.stack([encode_clevr_objects(clevr_render.scene_json(out, i)["objects"], rows) for i in range(n)])
    return {
        "image": resize_images(out["image"], size).numpy(),  # [n, 3, S, S]
        "target": target.astype(np.float32),  # [n, M, 19]
        "mask": resize_masks(out["mask"], size).numpy(),  # [n, S, S]
        "num_objects": out["num_objects"].astype(np.int64),  # [n]
    }


class _FolderShards:
    """Reads consecutive (filtered) scenes of a CLEVR v1.0 split, decoding PNGs in DataLoader workers."""

    def __init__(self, spec: dict[str, Any], workers: int) -> None:
        rows = TARGET_ROWS[spec["variant"]]
        size = spec["image_size"]
        self.dataset = ClevrFolder(spec["path"], spec["folder_split"], max_objects=rows, image_size=(size, size),
                                   target_rows=rows)  # fmt: skip
        self.workers = workers

    def read(self, start: int, n: int) -> dict[str, np.ndarray]:
        subset = torch.utils.data.Subset(self.dataset, range(start, start + n))
        loader = DataLoader(subset, batch_size=64, num_workers=self.workers, collate_fn=collate_clevr)
        images, targets, nums = [], [], []
        for batch in loader:
            images.append(batch["image"].numpy())
            targets.append(batch["target"].numpy())
            nums += [len(o) for o in batch["objects"]]
        return {
            "image": np.concatenate(images),  # [n, 3, S, S]
            "target": np.concatenate(targets).astype(np.float32),  # [n, M, 19]
            "num_objects": np.asarray(nums, dtype=np.int64),  # [n]
        }


def build_cache(folder: Path, spec: dict[str, Any], count: int, shard_size: int = 1000, workers: int = 0) -> Path:
    """Make ``folder`` a complete cache of at least ``count`` images of ``spec`` (:mod:`slotlab.data.shards`)."""
    if cache_status(folder, spec, count) == "complete":
        return Path(folder)
    reader = _FolderShards(spec, workers) if spec["source"] == "clevr_folder" else None
    if reader is not None and count > len(reader.dataset):
        raise DatasetFileError(
            f"{spec['path']}: split {spec['folder_split']!r} has {len(reader.dataset)} scenes "
            f"(variant {spec['variant']}), fewer than the {count} asked for; lower data.train_size / "
            "data.eval_size"
        )
    produce = reader.read if reader is not None else functools.partial(_render_shard, spec)
    return shards.build_cache(folder, spec, count, shard_size, produce, ("image", "target"))


def folder_size(data_cfg: dict[str, Any], split: str) -> int:
    """How many scenes of ``split`` a CLEVR v1.0 folder (``data.source`` clevr_folder) holds for the variant (its
    scenes with at most as many objects as the variant's slots)."""
    spec = cache_spec(data_cfg, split)
    rows = TARGET_ROWS[spec["variant"]]
    return len(ClevrFolder(spec["path"], spec["folder_split"], max_objects=rows, image_size=None, target_rows=rows))


def load_cache(folder: Path, count: int | None = None, keys: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """The first ``count`` images of a complete cache as tensors (``keys``: which arrays; default all)."""
    return {k: torch.from_numpy(v) for k, v in shards.load_cache(folder, count, keys).items()}


def prepare_split(data_cfg: dict[str, Any], split: str, count: int) -> Path:
    """Build (if needed) and return the cache folder of ``count`` images of ``split`` ("train" or "eval").

    A CLEVR v1.0 folder's cache is also keyed by the folder's content (:func:`folder_content_key`, in the spec
    its manifest records, not in the cache folder's name): edited scenes or replaced / deleted images are decoded
    again, into the same cache folder."""
    spec = cache_spec(data_cfg, split)
    folder = cache_folder(cache_root(data_cfg["cache_dir"]), spec)
    if spec["source"] == "clevr_folder":
        spec = {**spec, "content": folder_content_key(spec["path"], spec["folder_split"])}
    return build_cache(folder, spec, count, int(data_cfg["shard_size"]), int(data_cfg["workers"]))


def load_split(
    data_cfg: dict[str, Any], split: str, count: int, keys: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """Tensors of ``split`` (building the cache first if needed): image uint8 [n, 3, S, S], target float32
    [n, M, 19], mask uint8 [n, S, S] (procedural only), num_objects int64 [n]."""
    return load_cache(prepare_split(data_cfg, split, count), count, keys)


class SetPredictionData(StepDataModule):
    """Training stream and held-out images of the set-prediction task (config section ``data``).

    Batches: ``image`` uint8 [B, 3, S, S], ``target`` float32 [B, M, 19] and, for evaluation batches of the
    procedural source, ``mask`` uint8 [B, S, S] (instance labels for the attention-mask ARI).
    """

    def __init__(self, data_cfg: dict[str, Any]) -> None:
        super().__init__(data_cfg["batch_size"], data_cfg["eval_batch_size"], data_cfg["seed"])
        self.cfg = dict(data_cfg)
        for key in ("batch_size", "train_size", "eval_size", "eval_batch_size"):
            if int(self.cfg[key]) < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {self.cfg[key]}")
        if self.cfg["batch_size"] > self.cfg["train_size"]:
            raise ConfigError(
                f"data.batch_size {self.cfg['batch_size']} is larger than the training set "
                f"(data.train_size {self.cfg['train_size']})"
            )
        cache_spec(self.cfg, "train")  # validates source / variant / path early
        self.rows = TARGET_ROWS[self.cfg["variant"]]

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: the caches are built once.
        prepare_split(self.cfg, "eval", self.cfg["eval_size"])
        if self.trainer is None or self.trainer.state.fn in (None, "fit"):
            prepare_split(self.cfg, "train", self.cfg["train_size"])

    def setup(self, stage: str | None = None) -> None:
        if self.eval is None:
            self.eval = load_split(self.cfg, "eval", self.cfg["eval_size"], ("image", "target", "mask", "num_objects"))
        if stage in (None, "fit") and self.train is None:
            self.train = load_split(self.cfg, "train", self.cfg["train_size"], ("image", "target"))

    val_keys = ("image", "target", "mask")
