"""Keep torch.compile's on-disk kernel cache usable after an interrupted run (``trainer.compile``).

Inductor compiles each CPU kernel with the system C++ compiler straight into its cache folder
(``TORCHINDUCTOR_CACHE_DIR``, by default ``/tmp/torchinductor_<user>``) and, on later runs, loads any library it
finds there without checking it. A run killed while it compiles (Ctrl-C, SIGKILL, a lost machine: the first minute
of every compiled run) can leave a library cut short, and every later compiled run on that machine, a ``--resume``
of the same run included, then fails when it loads it (``ImportError: ... .so: file too short``) or crashes in
native code. :func:`remove_broken_kernels` deletes such files before compiling, so inductor rebuilds them.

A file counts as broken when it is not a complete ELF object: too short for its own program and section header
tables, or with a section-name table that is not a string table (a linker that maps the output file and was killed
before writing it). Files that another process is compiling right now (inductor holds ``locks/<key>.lock`` while it
builds ``<key>*.so``), and object files written in the last two minutes, are left alone.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from pathlib import Path

from filelock import FileLock, Timeout

_SHT_STRTAB = 3
_SHT_NOBITS = 8  # a section with no data in the file (.bss)


def inductor_cache_dir() -> Path:
    """The folder inductor caches compiled kernels in (without creating it)."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env:
        return Path(env).absolute()
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return Path(default_cache_dir()).absolute()


def is_complete_elf(path: Path) -> bool:
    """Whether ``path`` is an ELF file with all of its header tables present (False for truncated files)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
                return False
            order = "<" if head[5] == 1 else ">"
            if head[4] == 2:  # ELF64
                if len(head) < 64:
                    return False
                phoff, shoff = struct.unpack_from(order + "QQ", head, 0x20)
                phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(order + "HHHHH", head, 0x36)
            else:  # ELF32
                phoff, shoff = struct.unpack_from(order + "II", head, 0x1C)
                phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(order + "HHHHH", head, 0x2A)
            if phoff + phnum * phentsize > size or shoff + shnum * shentsize > size:
                return False
            if shnum == 0 or shstrndx == 0 or shstrndx >= shnum:
                return shnum == 0 and shoff == 0  # no sections at all: nothing more to check
            f.seek(shoff)
            table = f.read(shnum * shentsize)
        if len(table) < shnum * shentsize:
            return False
        # Each section's data lies in the file (sh_type, sh_offset, sh_size of each section header).
        fields = order + ("4xI16xQQ" if head[4] == 2 else "4xI8xII")
        for i in range(shnum):
            sh_type, offset, length = struct.unpack_from(fields, table, i * shentsize)
            if sh_type != _SHT_NOBITS and offset + length > size:
                return False
        # The section-name table is a string table (zeros if the file was sized but never written).
        return struct.unpack_from(order + "4xI", table, shstrndx * shentsize)[0] == _SHT_STRTAB
    except OSError:
        return False


def remove_broken_kernels(root: Path | None = None, object_age_s: float = 120.0) -> list[Path]:
    """Delete the compiled kernels (``*.so``, ``*.o``) under inductor's cache that are not complete ELF files;
    returns the deleted paths. Kernels being compiled by another process right now are skipped: a library whose
    lock is held, and an object file (built under its library's lock, whose name it does not share) last written
    less than ``object_age_s`` seconds ago."""
    root = inductor_cache_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    try:
        paths = sorted([*root.rglob("*.so"), *root.rglob("*.o")])
    except OSError:  # an unreadable cache: inductor will report it itself
        return []
    for path in paths:
        try:
            if not path.is_file() or is_complete_elf(path):
                continue
            if path.suffix == ".o" and now - path.stat().st_mtime < object_age_s:
                continue
            lock = root / "locks" / (path.name.split(".")[0] + ".lock")
            with FileLock(str(lock), timeout=0) if lock.parent.is_dir() else contextlib.nullcontext():
                if not is_complete_elf(path):  # still broken once no one can be writing it
                    path.unlink(missing_ok=True)
                    removed.append(path)
        except Timeout:
            continue  # another process holds the lock: it is compiling this kernel now
        except OSError:
            continue  # e.g. another user's file in a shared cache: leave it, inductor reports what it cannot load
    return removed
