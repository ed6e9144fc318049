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
  scenes with at most 6 objects.

Partial caches: every shard is written to ``<name>.tmp`` and renamed when complete; ``manifest.json`` is written
last. A folder without a (matching) manifest is partial (e.g. a killed generation): its complete shards are
checked (full load) and kept, ``*.tmp`` leftovers and unreadable shards are deleted, the missing shards are
generated again (they are a pure function of their index) and the manifest is written. A cache with more
images than asked for is reused (its first images are the same); one with fewer is extended.

Training batches come from :class:`slotlab.data.datamodule.StepBatches` (a pure function of data seed and step,
so resumed runs see the same batches); the whole split is held in memory as uint8.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from slotlab.data.cache import cache_root, make_cache_folder
from slotlab.data.clevr_folder import ClevrFolder, collate_clevr, encode_clevr_objects
from slotlab.data.datamodule import StepBatches, TensorDictDataset
from slotlab.data.errors import DatasetFileError
from slotlab.data.splits import split_stream

TARGET_ROWS = {"clevr6": 6, "clevr10": 10}
FOLDER_SPLITS = {"train": "train", "eval": "val"}
CACHE_FORMAT = 1
MANIFEST = "manifest.json"
SOURCES = ("procedural", "clevr_folder")


@functools.cache
def renderer_version() -> str:
    """Short hash of the renderer's source code (part of the procedural cache key); computed once per process,
    so it describes the code this process runs even if the files change on disk meanwhile."""
    from slotlab.data import clevr_render, clevr_scene

    h = hashlib.sha1()
    for module in (clevr_render, clevr_scene):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()[:10]


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
        raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
    if variant not in TARGET_ROWS:
        raise ValueError(f"data.variant must be one of {sorted(TARGET_ROWS)}, got {variant!r}")
    if split not in ("train", "eval", "test"):
        raise ValueError(f"split must be 'train', 'eval' or 'test', got {split!r}")
    if split == "test" and source == "clevr_folder":
        raise ValueError(
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


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def cache_status(folder: str | os.PathLike[str], spec: dict[str, Any] | None = None, count: int = 0) -> str:
    """``"missing"`` (no folder), ``"partial"`` (no / unreadable / mismatching manifest, a listed shard missing,
    or fewer than ``count`` images) or ``"complete"``."""
    folder = Path(folder)
    if not folder.is_dir():
        return "missing"
    m = read_manifest(folder)
    if m is None or (spec is not None and m.get("spec") != spec) or m.get("count", 0) < count:
        return "partial"
    if not all((folder / s["file"]).is_file() for s in m.get("shards", [])):
        return "partial"
    return "complete"


def _shard_name(index: int) -> str:
    return f"shard_{index:05d}.npz"


def _write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_shard(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _shard_ok(path: Path, n: int, rows: int) -> bool:
    try:
        a = _load_shard(path)
    except Exception:  # truncated / corrupt zip: numpy raises several kinds
        return False
    return (
        "image" in a
        and "target" in a
        and a["image"].shape[0] == n
        and a["target"].shape[0] == n
        and a["target"].shape[1:] == (rows, 19)
    )


def _render_shard(spec: dict[str, Any], start: int, n: int) -> dict[str, np.ndarray]:
    from slotlab.data import clevr_render

    out = clevr_render.generate(
        spec["stream"], start, n, variant=spec["variant"], image_size=tuple(spec["render_size"])
    )
    rows = TARGET_ROWS[spec["variant"]]
    size = spec["image_size"]
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
    """Make ``folder`` a complete cache of at least ``count`` images of ``spec`` (see the module docstring)."""
    folder = Path(folder)
    if cache_status(folder, spec, count) == "complete":
        return folder
    make_cache_folder(folder)
    old = read_manifest(folder)
    (folder / MANIFEST).unlink(missing_ok=True)  # from here on the folder is partial until the manifest is back
    for tmp in folder.glob("*.tmp"):
        tmp.unlink()
    if old is not None and (old.get("spec") != spec or old.get("shard_size") != shard_size):
        for f in folder.glob("shard_*.npz"):
            f.unlink()
    rows = TARGET_ROWS[spec["variant"]]
    reader = _FolderShards(spec, workers) if spec["source"] == "clevr_folder" else None
    if reader is not None and count > len(reader.dataset):
        raise DatasetFileError(
            f"{spec['path']}: split {spec['folder_split']!r} has {len(reader.dataset)} scenes "
            f"(variant {spec['variant']}), fewer than the {count} asked for; lower data.train_size / data.eval_size"
        )
    shards = []
    for index, start in enumerate(range(0, count, shard_size)):
        n = min(shard_size, count - start)
        path = folder / _shard_name(index)
        # A shard of the old manifest with exactly n images is trusted; any other existing shard is checked.
        listed = (
            old is not None
            and old.get("spec") == spec
            and any(s["file"] == path.name and s["count"] == n for s in old.get("shards", []))
        )
        if not (path.is_file() and (listed or _shard_ok(path, n, rows))):
            arrays = reader.read(start, n) if reader is not None else _render_shard(spec, start, n)
            _write_shard(path, arrays)
        shards.append({"file": path.name, "start": start, "count": n})
    manifest = {"spec": spec, "count": count, "shard_size": shard_size, "shards": shards}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)
    return folder


def load_cache(folder: Path, count: int | None = None, keys: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """The first ``count`` images of a complete cache as tensors (``keys``: which arrays; default all)."""
    m = read_manifest(folder)
    if m is None:
        raise DatasetFileError(f"{folder}: no manifest.json; the cache is incomplete (rebuild it)")
    count = m["count"] if count is None else count
    if count > m["count"]:
        raise DatasetFileError(f"{folder}: holds {m['count']} images, {count} asked for")
    parts: dict[str, list[np.ndarray]] = {}
    for s in m["shards"]:
        if s["start"] >= count:
            break
        a = _load_shard(Path(folder) / s["file"])
        take = min(s["count"], count - s["start"])
        for k, v in a.items():
            if keys is None or k in keys:
                parts.setdefault(k, []).append(v[:take])
    return {k: torch.from_numpy(np.concatenate(v)) for k, v in parts.items()}


def prepare_split(data_cfg: dict[str, Any], split: str, count: int) -> Path:
    """Build (if needed) and return the cache folder of ``count`` images of ``split`` ("train" or "eval")."""
    spec = cache_spec(data_cfg, split)
    folder = cache_folder(cache_root(data_cfg["cache_dir"]), spec)
    return build_cache(folder, spec, count, int(data_cfg["shard_size"]), int(data_cfg["workers"]))


def load_split(
    data_cfg: dict[str, Any], split: str, count: int, keys: tuple[str, ...] | None = None
) -> dict[str, torch.Tensor]:
    """Tensors of ``split`` (building the cache first if needed): image uint8 [n, 3, S, S], target float32
    [n, M, 19], mask uint8 [n, S, S] (procedural only), num_objects int64 [n]."""
    return load_cache(prepare_split(data_cfg, split, count), count, keys)


class SetPredictionData(L.LightningDataModule):
    """Training stream and held-out images of the set-prediction task (config section ``data``).

    Batches: ``image`` uint8 [B, 3, S, S], ``target`` float32 [B, M, 19] and, for evaluation batches of the
    procedural source, ``mask`` uint8 [B, S, S] (instance labels for the attention-mask ARI).
    """

    def __init__(self, data_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = dict(data_cfg)
        for key in ("batch_size", "train_size", "eval_size", "eval_batch_size"):
            if int(self.cfg[key]) < 1:
                raise ValueError(f"data.{key} must be >= 1, got {self.cfg[key]}")
        if self.cfg["batch_size"] > self.cfg["train_size"]:
            raise ValueError(
                f"data.batch_size {self.cfg['batch_size']} is larger than the training set "
                f"(data.train_size {self.cfg['train_size']})"
            )
        cache_spec(self.cfg, "train")  # validates source / variant / path early
        self.rows = TARGET_ROWS[self.cfg["variant"]]
        self.train: dict[str, torch.Tensor] | None = None
        self.eval: dict[str, torch.Tensor] | None = None

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

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start = trainer.global_step if trainer is not None else 0
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        batches = StepBatches(self.train, self.cfg["batch_size"], self.cfg["seed"], start, rank, world)
        return DataLoader(batches, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        tensors = {k: v for k, v in self.eval.items() if k in ("image", "target", "mask")}
        return DataLoader(TensorDictDataset(tensors), batch_size=self.cfg["eval_batch_size"], shuffle=False)
