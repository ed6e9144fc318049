"""The shard cache of expensive procedural datasets of object discovery (the CLEVR-like renderer), generated
once: ``slotlab data generate`` and the DataModule use it. The cache itself (validated by its manifest's spec,
resumable, repairable) is :mod:`slotlab.data.shards`, shared with set prediction; this module says what a split
of a registered dataset is: a folder named after the dataset, the data seed and the split, ``SHARD`` images per
shard, made by worker processes in parallel (image ``i`` of a split is the same whatever the shard layout or
worker count).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from slotlab.data import shards
from slotlab.data.registry import get_dataset
from slotlab.data.shards import cache_root, default_cache_dir, make_cache_folder  # noqa: F401 (the cache root)
from slotlab.data.splits import split_stream
from slotlab.errors import ConfigError

SHARD = 512
KEYS = ("image", "mask", "num_objects")
DIGITS = 6  # shard_000000.npz
CACHE_FORMAT = 1


def split_folder(cache_dir: str | Path, name: str, split: str, seed: int) -> Path:
    return Path(cache_dir) / name / f"seed{seed}-{split}"


def split_spec(name: str, split: str, seed: int) -> dict:
    """What the images of a cached split are: dataset, split stream and (rendered data) the renderer's version;
    for a dataset that is not of images, its kind and the arrays kept."""
    info = get_dataset(name, kind=None)
    spec = {"format": CACHE_FORMAT, "dataset": name, "split": split, "seed": seed, "stream": split_stream(seed, split)}
    if info.expensive:
        spec["renderer"] = shards.renderer_version()
    if info.kind != "image":
        spec.update(kind=info.kind, keys=list(info.keys))
    return spec


def _generate(name: str, stream: int, start: int, count: int) -> dict[str, np.ndarray]:
    info = get_dataset(name, kind=None)
    data = info.generate(stream, start, count)
    return {k: data[k] for k in info.keys}


def missing_shards(folder: Path, count: int) -> list[int]:
    return shards.missing_shards(folder, count, SHARD, DIGITS)


def build(
    name: str,
    split: str,
    count: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Make sure the first ``count`` images of a split are cached; returns the folder.

    workers: processes (0 = all CPU cores). progress(done, total) is called before the first shard and after each.
    """
    folder = split_folder(cache_root(cache_dir), name, split, seed)
    produce = functools.partial(_generate, name, split_stream(seed, split))
    return shards.build_cache(
        folder, split_spec(name, split, seed), count, SHARD, produce, get_dataset(name, kind=None).keys,
        workers=workers or os.cpu_count() or 1, progress=progress, digits=DIGITS,
    )  # fmt: skip


def load(folder: Path, count: int, keys: tuple[str, ...] = KEYS) -> dict[str, np.ndarray]:
    """The first ``count`` images of a cached split (image uint8 [n, H, W, 3], mask uint8 [n, H, W]; ``keys``:
    the arrays, the dataset's own for a video one)."""
    return shards.load_cache(folder, count, keys)


def cached_split(
    name: str, split: str, count: int, seed: int = 0, cache_dir: str | Path | None = None, workers: int = 0
) -> dict[str, np.ndarray]:
    return load(build(name, split, count, seed, cache_dir, workers), count, get_dataset(name, kind=None).keys)


def check_cache_writable(cache_dir: str | Path | None) -> None:
    """ConfigError when the data cache (``data.cache_dir``, else $SLOTLAB_CACHE, else the user cache) is not a
    writable folder (it is created if missing): checked before a run starts."""
    root = cache_root(cache_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write_test_{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"cannot write the data cache {root}: {e.strerror or e}. Set SLOTLAB_CACHE (or data.cache_dir) to a "
            "writable folder"
        ) from e
