"""Machine-dependent choices made at start-up: precision, memory layout, threads and the allocator.

- bf16 autocast is chosen (``precision: auto``) only where the hardware computes bf16 natively: CUDA GPUs
  with bf16 support and CPUs with AMX-bf16 or AVX512-bf16. Elsewhere (e.g. AVX2-only CPUs) bf16 would be
  emulated and slower, so fp32 is used.
- glibc's malloc returns large activation buffers to the OS after every step (mmap/munmap), which costs
  hundreds of thousands of page faults per training step; ``tune_malloc`` keeps them in the heap
  (``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB ``M_TRIM_THRESHOLD``). No effect on non-glibc systems.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import types
from pathlib import Path

import torch


@functools.cache
def _cpuinfo(field: str) -> str | None:
    """The value of the first ``field`` line of /proc/cpuinfo, or None (no such line, or no /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags() -> frozenset[str]:
    return frozenset((_cpuinfo("flags") or "").split())


def cpu_vendor() -> str:
    """``vendor_id`` of /proc/cpuinfo ("GenuineIntel", "AuthenticAMD", ...), or "" where there is none."""
    return _cpuinfo("vendor_id") or ""


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bf16 instructions (AMX-bf16 or AVX-512-bf16)."""
    flags = cpu_flags()
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def cpu_prefers_bf16() -> bool:
    """Whether bf16 autocast trains faster than fp32 on this CPU (what ``precision: auto`` follows).

    Yes with AMX-bf16, and with AVX-512-bf16 on AMD (Zen 4/5, where the bf16 dot product does twice the
    multiply-adds of an fp32 FMA: TF's bf16 step of the 35x35 model was 3.4x its fp32 step on such a 2-core EPYC).
    No on Intel CPUs with AVX-512-bf16 but no AMX (Cooper Lake, or a Sapphire Rapids VM whose kernel does not
    enable AMX): there the bf16 dot product does no more multiply-adds per cycle than fp32 FMAs, and slotlab's
    fp32 steps measured 1.5x / 1.35x / 1.5x faster than its bf16 steps at 35x35 / 64x64 / 128x128
    (benchmarks/RESULTS.md, fifth session). No without bf16 instructions.
    """
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return True
    return "avx512_bf16" in flags and cpu_vendor() == "AuthenticAMD"


def tensorboard_without_tensorflow() -> None:
    """Make TensorBoard's event writer use its own TensorFlow stub even where TensorFlow is installed.

    ``tensorboard.compat.tf`` imports TensorFlow when it can, which costs seconds and memory at the first logged
    scalar and registers TF's protobuf messages process-wide. slotlab needs TensorFlow only to read official
    checkpoints (``slotlab import-official``, which imports it directly), so the CLI and the tests mark the
    stub as wanted: the (documented) ``tensorboard.compat.notf`` module, whose presence selects the stub.
    """
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def machine_kind() -> str:
    """One line naming the CPU's bf16 capability and what ``precision: auto`` picks on it."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        kind = "AMX-bf16 (and AVX-512-bf16)" if "avx512_bf16" in flags else "AMX-bf16"
    elif "avx512_bf16" in flags:
        kind = f"AVX-512-bf16, no AMX ({cpu_vendor() or 'unknown vendor'})"
    elif "avx512f" in flags:
        kind = "AVX-512 without bf16"
    elif "avx2" in flags:
        kind = "AVX2-only"
    else:
        kind = "no AVX2"
    auto = resolve_precision("auto", resolve_accelerator("auto"))
    return f"CPU: {kind}; native bf16: {cpu_has_native_bf16()}; precision auto = {auto}; torch {torch.__version__}"


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    name = _cpuinfo("model name")
    if name:
        return name
    import platform

    return platform.processor() or platform.machine()


def machine_description(accelerator: str = "cpu") -> str:
    """What a run ran on, for results.json and the benchmark tables: CPU model, cores, bf16 kind, and the GPU."""
    import os

    line = f"{cpu_model_name()}, {os.cpu_count()} cores; {machine_kind()}"
    if accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        line += f"; GPU: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return line


def resolve_accelerator(accelerator: str) -> str:
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return accelerator


def resolve_precision(precision: str | int, accelerator: str) -> str:
    """``auto`` -> "bf16-mixed" where bf16 trains faster than fp32 (:func:`cpu_prefers_bf16` on CPUs; GPUs with
    bf16, else "16-mixed"), else "32-true"; other values pass through."""
    if precision != "auto":
        return str(precision)
    if accelerator in ("gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_prefers_bf16() else "32-true"


def resolve_channels_last(value: str | bool) -> bool:
    if value == "auto":
        return True
    if isinstance(value, bool):
        return value
    raise ValueError(f"trainer.channels_last must be auto, true or false, got {value!r}")


def compile_support(accelerator: str) -> str | None:
    """Why ``torch.compile`` cannot run here, or None if it can: inductor needs a C++ compiler to build CPU
    kernels and Triton for GPU kernels (without them the first training step would fail)."""
    if accelerator in ("gpu", "cuda"):
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed (inductor needs it for GPU kernels)"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 (inductor raises its own error types for a missing compiler)
        return f"no C++ compiler found for inductor's CPU kernels ({type(e).__name__}: {e})"
    return None


_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Keep freed large blocks in glibc's heap; returns True if applied (idempotent)."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok
