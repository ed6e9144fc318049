"""slotlab.train.kernel_cache: compiled kernels left cut short by a killed compile are found and removed.

A real shared library (torch's small ``_C`` extension stub) stands in for a compiled kernel: the complete file is
kept, every truncation of it is detected, and a kernel another process is compiling (its inductor lock held) is
left alone. The end-to-end test shows the failure the removal prevents: a truncated kernel in the cache makes the
next torch.compile run fail, and after :func:`remove_broken_kernels` the same run succeeds.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_OD, TINY_STEPS
from filelock import FileLock

from slotlab.cli import main
from slotlab.train.kernel_cache import inductor_cache_dir, is_complete_elf, remove_broken_kernels
from slotlab.train.runtime import compile_support

LIB = Path(torch._C.__file__)  # a small ELF shared library (~9 kB)


def structural_end(data: bytes) -> int:
    """Where the last section's data or the section header table ends (ELF64, little-endian): later bytes, if
    any, are not part of the library's structure (this file has some)."""
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    ends = [shoff + shentsize * shnum]
    for i in range(shnum):
        sh_type, offset, size = struct.unpack_from("<4xI16xQQ", data, shoff + i * shentsize)
        ends.append(offset + (size if sh_type != 8 else 0))
    return max(ends)


def copy_lib(path: Path, size: int | None = None, zero_from: int | None = None) -> Path:
    data = bytearray(LIB.read_bytes())
    if zero_from is not None:
        data[zero_from:] = bytes(len(data) - zero_from)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data if size is None else data[:size]))
    return path


def test_a_complete_library_is_complete(tmp_path):
    assert is_complete_elf(LIB)
    assert is_complete_elf(copy_lib(tmp_path / "k.so"))


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.3, 0.7, 0.99, 0.9999])
def test_every_truncation_is_detected(tmp_path, fraction):
    end = structural_end(LIB.read_bytes())
    assert end <= LIB.stat().st_size
    assert not is_complete_elf(copy_lib(tmp_path / "k.so", size=int(end * fraction)))
    assert not is_complete_elf(copy_lib(tmp_path / "k.so", size=end - 1))
    assert is_complete_elf(copy_lib(tmp_path / "k.so", size=end))


def test_a_full_size_file_whose_tail_was_never_written_is_detected(tmp_path):
    # A linker that sizes the output first and maps it: killed before it wrote the section headers (zeros).
    assert not is_complete_elf(copy_lib(tmp_path / "k.so", zero_from=LIB.stat().st_size // 2))


def test_files_that_are_not_elf_are_not_complete(tmp_path):
    (tmp_path / "text.so").write_text("not a library")
    assert not is_complete_elf(tmp_path / "text.so")
    assert not is_complete_elf(tmp_path / "missing.so")


def test_remove_broken_kernels_removes_only_the_broken_ones(tmp_path):
    good = copy_lib(tmp_path / "ab" / "cgood.main.so")
    cut = copy_lib(tmp_path / "cd" / "ccut.main.so", size=4000)
    cut_obj = copy_lib(tmp_path / "cd" / "ccut.kernel.o", size=100)
    os.utime(cut_obj, (0, 0))  # written long ago (a fresh object file may be one another process is writing)
    fresh_obj = copy_lib(tmp_path / "cd" / "cfresh.kernel.o", size=100)
    source = tmp_path / "cd" / "ccut.main.cpp"
    source.write_text("// kernel source")
    removed = remove_broken_kernels(tmp_path)
    assert sorted(removed) == sorted([cut, cut_obj])
    assert good.exists() and not cut.exists() and not cut_obj.exists() and source.exists() and fresh_obj.exists()
    assert remove_broken_kernels(tmp_path) == []
    assert remove_broken_kernels(tmp_path, object_age_s=0) == [fresh_obj]
    assert remove_broken_kernels(tmp_path / "no-such-folder") == []


def test_a_kernel_being_compiled_by_another_process_is_left_alone(tmp_path):
    (tmp_path / "locks").mkdir()
    busy = copy_lib(tmp_path / "ef" / "cbusy.main.so", size=100)  # being written right now
    with FileLock(str(tmp_path / "locks" / "cbusy.lock")):  # as inductor holds it while compiling
        code = "import sys, slotlab.train.kernel_cache as kc; print(len(kc.remove_broken_kernels(sys.argv[1])))"
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "0"
        assert busy.exists()
    assert remove_broken_kernels(tmp_path) == [busy]


def test_the_cache_folder_follows_torchinductor_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    assert inductor_cache_dir() == (tmp_path / "cache").absolute()
    assert not (tmp_path / "cache").exists()  # looking does not create it


COMPILE = """
import torch
f = torch.compile(lambda x: (x.sin() * 3 + x.cos()).sum(dim=0))
print(float(f(torch.arange(64.0).reshape(8, 8)).sum()))
"""


@pytest.mark.skipif(compile_support("cpu") is not None, reason="torch.compile cannot build CPU kernels here")
def test_a_truncated_kernel_breaks_the_next_compile_until_removed(tmp_path):
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=600)

    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    kernels = sorted((tmp_path / "cache").rglob("*.so"))
    assert kernels, "the compile cached no kernel"
    for k in kernels:  # as a compile killed while the compiler wrote them leaves them
        k.write_bytes(k.read_bytes()[:1000])
    broken = run()
    assert broken.returncode != 0
    assert sorted(remove_broken_kernels(tmp_path / "cache")) == kernels
    fixed = run()
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert fixed.stdout == first.stdout
    shutil.rmtree(tmp_path / "cache")


def test_a_compiled_run_removes_broken_kernels_first(tmp_path, monkeypatch):
    # The training entry point cleans the cache before compiling (a resumed run after a killed compile included).
    # Module.compile is stubbed out: what is tested is the cleaning, not inductor (the test above runs inductor).
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    broken = copy_lib(tmp_path / "cache" / "ab" / "cbroken.main.so", size=500)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: None)
    result = train_cli(tmp_path, ["trainer.compile=true"])
    assert result["compile"] is True and result["compile_cache_removed"] == 1
    assert not broken.exists()
    result = train_cli(tmp_path, ["trainer.compile=false"], name="eager")
    assert result["compile"] is False and result["compile_cache_removed"] == 0


def train_cli(root: Path, overrides: list[str], name: str = "compiled") -> dict:
    assert main(["train", *TINY_OD, *TINY_STEPS, *overrides, f"run.root={root}", f"run.name={name}"]) == 0
    return json.loads((root / name / "results.json").read_text())


def test_files_that_cannot_be_removed_do_not_stop_training(tmp_path, monkeypatch):
    broken = copy_lib(tmp_path / "ab" / "cbroken.main.so", size=500)
    other = copy_lib(tmp_path / "cd" / "cother.main.so", size=500)

    def refuse(self, missing_ok=False):
        if self == broken:
            raise PermissionError(f"[Errno 13] Permission denied: '{self}'")
        return real_unlink(self, missing_ok=missing_ok)

    real_unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", refuse)
    assert remove_broken_kernels(tmp_path) == [other]
    assert broken.exists() and not other.exists()
