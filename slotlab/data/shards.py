"""The one on-disk shard cache of every dataset that is expensive to make (CLEVR-like renders of both tasks, decoded
CLEVR v1.0 folders): validated, resumable and repairable. Data infrastructure; not part of the paper.

A cache folder holds numbered ``.npz`` shards and ``manifest.json`` = {``spec``: what the images are (dataset,
split stream, sizes, a hash of the generator's source: anything that changes them), ``count``, ``shard_size``,
``shards``: [{file, start, count}]}. Every shard is written atomically (``<name>.tmp``, then renamed) and the
manifest last, so:

* *validated*: a folder whose manifest has another spec is never read as this one (its shards are replaced);
  loading reads only what the manifest lists and names a missing or corrupt shard;
* *resumable*: a killed build leaves whole shards; the next build keeps them and makes only the missing ones
  (images are a pure function of their index, so the result is the same);
* *repairable*: shards the manifest does not vouch for are checked (fully loaded, sizes compared); truncated or
  unreadable ones and ``*.tmp`` leftovers are deleted and made again. A cache with more images than asked for is
  reused (its first images are the same); one with fewer is extended.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from slotlab.atomic import atomic_open, write_json
from slotlab.data.errors import DatasetFileError

MANIFEST = "manifest.json"
Arrays = dict[str, np.ndarray]


def default_cache_dir() -> Path:
    """The one root of every dataset cache (both tasks): $SLOTLAB_CACHE, else $XDG_CACHE_HOME/slotlab, else
    ~/.cache/slotlab. Never the current directory."""
    if os.environ.get("SLOTLAB_CACHE"):
        return Path(os.environ["SLOTLAB_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "slotlab"
    return Path.home() / ".cache" / "slotlab"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` (a config's ``data.cache_dir``) when set, else :func:`default_cache_dir`."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def make_cache_folder(folder: Path) -> None:
    """Create a cache folder; a folder that cannot be written raises DatasetFileError saying what to do."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetFileError(
            f"cannot write the data cache {folder}: {e.strerror or e}. Set SLOTLAB_CACHE (or data.cache_dir) to a "
            "writable folder"
        ) from e


def renderer_modules() -> tuple:
    """The modules whose code makes the CLEVR renders (scene sampling, geometry, shading, the pipeline)."""
    from slotlab.data import clevr_geometry, clevr_render, clevr_scene, clevr_shading

    return (clevr_render, clevr_scene, clevr_geometry, clevr_shading)


@functools.cache
def renderer_version() -> str:
    """Short hash of the CLEVR renderer's source code (``renderer_modules``; part of the cache spec of rendered
    images); computed once per process, so it describes the code this process runs even if the files change on
    disk meanwhile."""
    h = hashlib.sha1()
    for module in renderer_modules():
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()[:10]


def shard_name(index: int, digits: int = 5) -> str:
    return f"shard_{index:0{digits}d}.npz"


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        m = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


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


def missing_shards(folder: str | os.PathLike[str], count: int, shard_size: int, digits: int = 5) -> list[int]:
    """Indices of the shards of the first ``count`` images that have no file."""
    n = -(-count // shard_size)
    return [i for i in range(n) if not (Path(folder) / shard_name(i, digits)).is_file()]


def write_shard(path: Path, arrays: Arrays) -> None:
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def load_shard(path: Path) -> Arrays:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def shard_ok(path: Path, n: int, keys: tuple[str, ...]) -> bool:
    """A shard that loads completely, has every key and ``n`` images."""
    try:
        a = load_shard(path)
    except Exception:  # truncated / corrupt zip: numpy raises several kinds
        return False
    return all(k in a and a[k].shape[0] == n for k in keys)


def _produce_and_write(produce: Callable[[int, int], Arrays], path: str, start: int, n: int) -> str:
    write_shard(Path(path), produce(start, n))
    return path


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core; several threads per process oversubscribe


def build_cache(
    folder: str | os.PathLike[str],
    spec: dict[str, Any],
    count: int,
    shard_size: int,
    produce: Callable[[int, int], Arrays],
    keys: tuple[str, ...],
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    digits: int = 5,
) -> Path:
    """Make ``folder`` a complete cache of at least ``count`` images of ``spec`` (see the module docstring).

    ``produce(start, n)`` makes images ``start .. start + n - 1`` (a pure function of its arguments; run in
    ``workers`` processes when > 1, so it must be picklable); ``keys`` are the arrays every shard holds;
    ``progress(done, total)`` is called before the first shard is made and after each.
    """
    folder = Path(folder)
    if cache_status(folder, spec, count) == "complete":
        return folder
    make_cache_folder(folder)
    old = read_manifest(folder)
    (folder / MANIFEST).unlink(missing_ok=True)  # from here on the folder is partial until the manifest is back
    for tmp in [*folder.glob("*.tmp"), *folder.glob("*.tmp.npz")]:  # left by a killed build (also older names)
        tmp.unlink()
    if old is not None and "spec" in old and (old["spec"] != spec or old.get("shard_size") != shard_size):
        for f in folder.glob("shard_*.npz"):  # another spec's images: never reused
            f.unlink()
    vouched = old is not None and old.get("spec") == spec
    shards, todo = [], []
    for index, start in enumerate(range(0, count, shard_size)):
        n = min(shard_size, count - start)
        path = folder / shard_name(index, digits)
        # A shard of the old manifest with exactly n images is trusted; any other existing shard is checked.
        listed = vouched and any(s["file"] == path.name and s["count"] == n for s in old.get("shards", []))
        if not (path.is_file() and (listed or shard_ok(path, n, keys))):
            path.unlink(missing_ok=True)
            todo.append((str(path), start, n))
        shards.append({"file": path.name, "start": start, "count": n})
    done = len(shards) - len(todo)
    if progress:
        progress(done, len(shards))
    if todo and workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=_worker_init) as pool:
            jobs = [pool.submit(_produce_and_write, produce, *job) for job in todo]
            for job in jobs:
                job.result()
                done += 1
                if progress:
                    progress(done, len(shards))
    else:
        for job in todo:
            _produce_and_write(produce, *job)
            done += 1
            if progress:
                progress(done, len(shards))
    write_json(folder / MANIFEST, {"spec": spec, "count": count, "shard_size": shard_size, "shards": shards}, 1)
    return folder


def load_cache(folder: str | os.PathLike[str], count: int | None = None, keys: tuple[str, ...] | None = None) -> Arrays:
    """The first ``count`` images of a complete cache (``keys``: which arrays; default all). A missing manifest,
    a missing shard or a corrupt one raises DatasetFileError naming it."""
    folder = Path(folder)
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
        path = folder / s["file"]
        try:
            a = load_shard(path)
        except FileNotFoundError as e:
            raise DatasetFileError(f"{path} is missing: the cache is incomplete; run `slotlab data generate`") from e
        except Exception as e:  # zipfile / pickle errors of a damaged file
            raise DatasetFileError(
                f"{path} is corrupt ({type(e).__name__}: {e}); delete it and it will be generated again"
            ) from e
        take = min(s["count"], count - s["start"])
        for k, v in a.items():
            if keys is None or k in keys:
                parts.setdefault(k, []).append(v[:take])
    return {k: np.concatenate(v) for k, v in parts.items()}
