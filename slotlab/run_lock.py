"""The lock of a run folder: one process at a time trains into (writes) a run folder.

``slotlab train`` (a new run and ``--resume``; only the first process of a multi-process job, which is the one that
writes) holds an OS file lock on ``RUN/.slotlab.lock`` from the moment it claims the folder until training ends. A
second ``train`` of the same folder gets a :class:`RunInUseError` naming the holder's pid instead of training beside
it. The lock is :mod:`filelock`'s ``flock``: the kernel releases it when its process ends, however it ends, so the
lock of a killed run never blocks the next ``--resume`` (the lock file stays; it is not what locks). Reading a run
(``slotlab eval`` / ``figures`` / ``report``) takes no lock. Training infrastructure; not part of the paper.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from slotlab.errors import RunDirError

log = logging.getLogger(__name__)

LOCK_NAME = ".slotlab.lock"

# run folder (resolved) -> the lock this process holds on it
_held: dict[Path, FileLock] = {}
# errors of a file system that cannot lock (some network file systems): the run goes on unlocked
_NO_LOCKING = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP})


class RunInUseError(RunDirError):
    """The run folder is being written (trained) by another slotlab process."""


def _holder_record() -> bytes:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["slotlab", *sys.argv[1:]]) if sys.argv else "",
    }
    return json.dumps(record).encode()


def _write_holder(fd: int) -> None:
    """filelock's ``on_acquired``: record who holds the lock in the (locked) lock file."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, _holder_record(), 0)


def holder(run_dir: str | os.PathLike[str]) -> dict:
    """What the lock file of ``run_dir`` says about its holder ({} when it says nothing readable)."""
    try:
        record = json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _in_use_message(run_dir: Path, new_run: bool) -> str:
    h = holder(run_dir)
    pid = h.get("pid") if isinstance(h.get("pid"), int) else None
    where = f" on {h['host']}" if h.get("host") and h.get("host") != socket.gethostname() else ""
    who = f"pid {pid}{where}" if pid is not None else "pid unknown"
    since = f", since {h['since']}" if h.get("since") else ""
    stop = f" (or stop it: kill {pid})" if pid is not None and not where else ""
    then = (
        "choose another run.name, or wait for it to finish" + stop
        if new_run
        else f"wait for it to finish{stop}, then run: slotlab train --resume {run_dir}"
    )
    return (
        f"run folder {run_dir} is in use by another slotlab process ({who}{since}) that is training into it; "
        f"{then}. slotlab eval / figures / report {run_dir} can read it meanwhile."
    )


def acquire_run_lock(run_dir: str | os.PathLike[str], new_run: bool = False) -> bool:
    """Take the lock of the existing folder ``run_dir`` for this process; True when taken now, False when this
    process holds it already. RunInUseError (``new_run``: its advice is for a new run) when another process does.

    On a file system without working ``flock`` the run is not locked (a warning is logged)."""
    folder = Path(run_dir)
    key = folder.resolve()
    if key in _held:
        return False
    lock = FileLock(folder / LOCK_NAME, timeout=0, thread_local=False, on_acquired=_write_holder)
    try:
        lock.acquire()
    except Timeout:
        raise RunInUseError(_in_use_message(folder, new_run)) from None
    except (OSError, NotImplementedError) as e:
        if isinstance(e, OSError) and e.errno not in _NO_LOCKING:
            raise RunDirError(
                f"cannot write the run folder {folder}: {e.strerror or e}; choose a writable run.root"
            ) from e
        log.warning("cannot lock the run folder %s (%s); it is not protected from a second training process", folder, e)
        return False
    _held[key] = lock
    return True


def release_run_lock(run_dir: str | os.PathLike[str]) -> None:
    """Release this process's lock of ``run_dir`` (nothing when it holds none)."""
    lock = _held.pop(Path(run_dir).resolve(), None)
    if lock is None:
        return
    try:
        (Path(run_dir) / LOCK_NAME).write_bytes(b"")  # still held here: nobody reads a stale holder afterwards
    except OSError:
        pass
    lock.release()


def holds_run_lock(run_dir: str | os.PathLike[str]) -> bool:
    """Whether this process holds the lock of ``run_dir``."""
    return Path(run_dir).resolve() in _held


@contextmanager
def run_lock(run_dir: str | os.PathLike[str], new_run: bool = False) -> Iterator[None]:
    """Hold the lock of ``run_dir`` for the block; a lock this process held already is kept after it."""
    taken = acquire_run_lock(run_dir, new_run)
    try:
        yield
    finally:
        if taken:
            release_run_lock(run_dir)


@contextmanager
def locks_released_after() -> Iterator[None]:
    """Release, when the block ends, every run folder lock this process took inside it."""
    before = set(_held)
    try:
        yield
    finally:
        for key in [k for k in _held if k not in before]:
            release_run_lock(key)
