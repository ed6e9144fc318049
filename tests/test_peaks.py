"""benchmarks/peaks.py: the peak GFLOP/s that throughput.py's "% of peak" divides by.

Timing assertions would be flaky on a shared CPU, so the logic is checked with a fake timer: the peak is the
maximum over the sweep (so it is at least every kernel's rate, the models' own convolutions included), kernels
too slow for the budget are skipped, and the sweep contains the models' own convolution shapes. One tiny real
sweep checks that the kernels run in both precisions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peaks  # noqa: E402


def fake_timer(seconds_per_gflop: dict[str, float]):
    def timer(fn, reps, budget_s):
        return seconds_per_gflop[fn.kernel_name]

    return timer


def test_peak_is_the_maximum_over_the_sweep(monkeypatch):
    kernels = peaks.KERNELS[:4]
    rates = {k.name: 100.0 * (i + 1) for i, k in enumerate(kernels)}  # GFLOP/s, the last one fastest

    def tagged_make(self, dtype):  # no real work: the fake timer gives the time
        fn = lambda: None  # noqa: E731
        fn.kernel_name = self.name
        return fn

    monkeypatch.setattr(peaks.Kernel, "make", tagged_make)
    times = {k.name: k.flops / 1e9 / rates[k.name] for k in kernels}
    results = peaks.sweep("fp32", kernels, budget_s=1e9, timer=fake_timer(times))
    assert [k for k, _ in results] == list(kernels)
    for k, g in results:
        assert g == pytest.approx(rates[k.name])
    best, kernel = peaks.peak(results)
    assert kernel == kernels[-1] and best == pytest.approx(400.0)
    assert all(best >= g for _, g in results)  # % of peak <= 100 % for every kernel of the sweep


def test_kernels_too_slow_for_the_budget_are_skipped(monkeypatch):
    small, big = peaks.Kernel("small", "mm", (8, 8, 8)), peaks.Kernel("big", "mm", (4096, 4096, 4096))
    monkeypatch.setattr(peaks.Kernel, "make", lambda self, dtype: lambda: None)
    # 1 GFLOP/s (emulated bf16): the 137-GFLOP matmul would take 137 s > the 1 s budget
    results = peaks.sweep("bf16", [small, big], budget_s=1.0, timer=lambda fn, reps, b: small.flops / 1e9)
    assert [k.name for k, _ in results] == ["small"]


def test_sweep_contains_the_models_own_convolutions():
    shapes = {k.shape for k in peaks.KERNELS if k.kind == "conv"}
    assert (64, 32, 35, 35, 32, 5) in shapes  # 35x35 encoder: 5x5, 32 channels, batch 64
    assert (8, 64, 128, 128, 64, 5) in shapes  # 128x128: 5x5, 64 channels
    assert any(k.kind == "mm" for k in peaks.KERNELS)


def test_tiny_real_sweep_runs_in_both_precisions():
    kernels = [peaks.Kernel("mm", "mm", (32, 32, 32)), peaks.Kernel("conv", "conv", (1, 8, 9, 9, 8, 5))]
    for precision in ("fp32", "bf16"):
        results = peaks.sweep(precision, kernels, reps=1, budget_s=5.0)
        assert len(results) == 2 and all(g > 0 for _, g in results)
        assert peaks.peak(results)[0] == max(g for _, g in results)


def test_host_state_names_both_probes_with_their_rates(monkeypatch):
    # The real kernels are replaced by no-ops (timing them would take seconds where bf16 is emulated); the line
    # must name each probe and give a positive median and best rate.
    monkeypatch.setattr(peaks.Kernel, "make", lambda self, dtype: lambda: None)
    line = peaks.host_state(samples=3)
    assert line.startswith("bf16 conv 3x3 64->256") and "fp32 mm 2048^3" in line
    rates = [float(w) for w in line.replace(",", " ").split() if w.replace(".", "").isdigit()]
    assert len(rates) >= 4 and all(r > 0 for r in rates)
