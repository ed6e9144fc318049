"""Shared test setup: the machine kind in pytest's header (so a CI failure names the CPU it happened on)."""

from __future__ import annotations

from slotlab.train.runtime import machine_kind


def pytest_report_header(config) -> str:
    return f"slotlab machine: {machine_kind()}"
