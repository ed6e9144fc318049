"""What machine this is: the CPU's model, vendor and instruction-set flags (from /proc/cpuinfo), whether it computes
bf16 natively and whether bf16 trains faster than fp32 on it, what ``precision: auto`` resolves to, and the one-line
descriptions that results.json, the zoo cards, the benchmark tables and the test header record. Reads the machine,
changes nothing (the start-up choices that do: :mod:`slotlab.train.runtime`). Not part of the paper.
"""

from __future__ import annotations

import functools
import os
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
    line = f"{cpu_model_name()}, {os.cpu_count()} cores; {machine_kind()}"
    if accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        line += f"; GPU: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return line
