"""``precision: auto`` on CPUs: bf16 autocast where it trains faster than fp32 (slotlab.machine).

AMX-bf16 (Intel) and AVX-512-bf16 on AMD: bf16. AVX-512-bf16 on Intel without AMX: fp32 (its bf16 dot product
does no more multiply-adds than fp32 FMAs; fp32 steps measured 1.35-1.5x faster there). No bf16 instructions:
fp32. The CPU is faked through the two /proc/cpuinfo readers."""

from __future__ import annotations

import pytest

from slotlab import machine

AVX512 = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl"}


@pytest.mark.parametrize(
    ("vendor", "flags", "expected"),
    [
        ("GenuineIntel", AVX512 | {"avx512_bf16", "amx_bf16", "amx_tile"}, "bf16-mixed"),  # Sapphire Rapids
        ("GenuineIntel", AVX512 | {"amx_bf16", "amx_tile"}, "bf16-mixed"),
        ("AuthenticAMD", AVX512 | {"avx512_bf16"}, "bf16-mixed"),  # Zen 4 / Zen 5
        ("GenuineIntel", AVX512 | {"avx512_bf16"}, "32-true"),  # Cooper Lake, or an SPR VM without AMX
        ("", AVX512 | {"avx512_bf16"}, "32-true"),  # vendor unknown: not known to gain
        ("GenuineIntel", AVX512, "32-true"),
        ("AuthenticAMD", {"avx2", "fma"}, "32-true"),  # Zen 3
        ("GenuineIntel", set(), "32-true"),
    ],
)
def test_auto_precision_on_cpus(monkeypatch, vendor, flags, expected):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(machine, "cpu_vendor", lambda: vendor)
    assert machine.resolve_precision("auto", "cpu") == expected
    assert machine.cpu_prefers_bf16() == (expected == "bf16-mixed")
    assert machine.cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & flags)
    assert f"precision auto = {expected}" in machine.machine_kind()


def test_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset(AVX512 | {"avx512_bf16"}))
    monkeypatch.setattr(machine, "cpu_vendor", lambda: "GenuineIntel")
    assert machine.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert machine.resolve_precision(32, "cpu") == "32"


def test_the_machine_line_names_the_vendor_without_amx(monkeypatch):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset(AVX512 | {"avx512_bf16"}))
    monkeypatch.setattr(machine, "cpu_vendor", lambda: "AuthenticAMD")
    assert "AVX-512-bf16, no AMX (AuthenticAMD)" in machine.machine_kind()


def test_this_machines_vendor_is_read():
    assert isinstance(machine.cpu_vendor(), str)
