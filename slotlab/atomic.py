"""One atomic write for every file slotlab writes (checkpoints, results, configs, figures, cache shards, reports).

The content goes to ``<name>.tmp`` next to the target, is flushed to disk and renamed over the target, so a
crash or a full disk leaves either the old file or the new one, never half of one; the temporary file is removed
when the write fails. ``slotlab train --resume`` deletes ``*.tmp`` leftovers of a killed process
(:func:`slotlab.train.resume.clean_stale_temporaries`). Not part of the paper: the training infrastructure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from slotlab.errors import UserError, file_access_error

TMP_SUFFIX = ".tmp"


def tmp_path(path: str | os.PathLike[str]) -> Path:
    """The temporary name a write of ``path`` uses until it is complete: ``<name>.tmp``."""
    path = Path(path)
    return path.with_name(path.name + TMP_SUFFIX)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """``with atomic_open(path, "w") as f: ...``: write ``f``; on a clean exit it is synced and renamed to
    ``path``, on an exception the partial file is removed and the exception propagates (``path`` untouched); an
    OSError becomes a :class:`~slotlab.errors.FileAccessError` naming ``path``."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # e.g. the folder is a file: nothing was written
        if isinstance(e, OSError) and not isinstance(e, UserError):
            # A folder that cannot be written (no permission, a full disk, a file in the path): the user's to fix.
            raise file_access_error(path, "write", e) from e
        raise


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (values JSON cannot hold are written as ``str``)."""
    return write_text(path, json.dumps(data, indent=indent, default=str))
