"""Machine-dependent choices made at start-up: precision, memory layout, torch.compile, TensorBoard and the allocator.

- bf16 autocast is chosen (``precision: auto``) only where bf16 trains faster than fp32: CUDA GPUs with bf16
  support and CPUs with AMX-bf16 or AMD's AVX-512-bf16 (:mod:`slotlab.machine`, which reads the machine; its
  names are re-exported here). Elsewhere (e.g. AVX2-only CPUs) bf16 would be emulated and slower, so fp32 is used.
- glibc's malloc returns large activation buffers to the OS after every step (mmap/munmap), which costs
  hundreds of thousands of page faults per training step; ``tune_malloc`` keeps them in the heap
  (``mallopt(M_MMAP_MAX, 0)`` and a 1 GiB ``M_TRIM_THRESHOLD``). No effect on non-glibc systems.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import types

from slotlab.machine import (
    cpu_flags,
    cpu_has_native_bf16,
    cpu_model_name,
    cpu_prefers_bf16,
    cpu_vendor,
    machine_description,
    machine_kind,
    resolve_accelerator,
    resolve_precision,
)

__all__ = [  # the machine's facts (slotlab.machine), re-exported for the training stack's callers
    "compile_support",
    "cpu_flags",
    "cpu_has_native_bf16",
    "cpu_model_name",
    "cpu_prefers_bf16",
    "cpu_vendor",
    "machine_description",
    "machine_kind",
    "resolve_accelerator",
    "resolve_channels_last",
    "resolve_precision",
    "tensorboard_without_tensorflow",
    "tune_malloc",
]


def tensorboard_without_tensorflow() -> None:
    """Make TensorBoard's event writer use its own TensorFlow stub even where TensorFlow is installed.

    ``tensorboard.compat.tf`` imports TensorFlow when it can, which costs seconds and memory at the first logged
    scalar and registers TF's protobuf messages process-wide. slotlab needs TensorFlow only to read official
    checkpoints (``slotlab import-official``, which imports it directly), so the CLI and the tests mark the
    stub as wanted: the (documented) ``tensorboard.compat.notf`` module, whose presence selects the stub.
    """
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


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
