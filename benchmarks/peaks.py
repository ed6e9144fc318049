"""The machine's measured peak GFLOP/s per precision: the best of a sweep of GEMM and convolution kernels.

A training step's "% of peak" divides its executed GFLOP/s by the peak of *its* precision (fp32 or bf16). A peak
from one square ``torch.mm`` is not the machine's best: oneDNN's channels_last convolutions (and, with AMX, the
bf16 ones) run faster than a 2048^3 matmul, so steps made of convolutions showed 175-209 % "of peak". Here the peak
is the maximum over

- GEMMs (``torch.mm``, square and tall) and
- forward convolutions in channels_last at the shapes slotlab's models run (the 5x5 encoder/decoder convolutions
  at 35x35 and 128x128, the phase-decomposed stride-2 transposed convolution of the 128x128 decoder) and larger
  ones (3x3 128->128, 1x1 256->256),

each in the precision's dtype (bf16 tensors: what autocast executes), after a warm-up call, best of ``reps`` calls.
The kernel that gave the peak is reported with it. ``python benchmarks/peaks.py`` prints the whole sweep.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Kernel:
    """A GEMM ``(m, k, n)`` or a forward conv ``(batch, c_in, h, w, c_out, kernel)`` (stride 1, 'same' padding)."""

    name: str
    kind: str  # "mm" or "conv"
    shape: tuple[int, ...]

    @property
    def flops(self) -> float:
        if self.kind == "mm":
            m, k, n = self.shape
            return 2.0 * m * k * n
        b, cin, h, w, cout, ks = self.shape
        return 2.0 * b * h * w * cout * cin * ks * ks

    def make(self, dtype: torch.dtype) -> Callable[[], object]:
        """A no-grad callable running the kernel once (inputs created here, once)."""
        if self.kind == "mm":
            m, k, n = self.shape
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            return lambda: torch.mm(a, b)
        bsz, cin, h, w, cout, ks = self.shape
        x = torch.randn(bsz, cin, h, w, dtype=dtype).to(memory_format=torch.channels_last)
        wt = torch.randn(cout, cin, ks, ks, dtype=dtype).to(memory_format=torch.channels_last)
        bias = torch.randn(cout, dtype=dtype)

        def conv() -> object:
            with torch.no_grad():
                return F.conv2d(x, wt, bias, padding=ks // 2)

        return conv


# Shapes of the models' own kernels (channels_last forward) and larger ones; see the module docstring.
KERNELS: tuple[Kernel, ...] = (
    Kernel("mm 512^3", "mm", (512, 512, 512)),  # first: a cheap probe of the rate (see ``sweep``)
    Kernel("mm 2048^3", "mm", (2048, 2048, 2048)),
    Kernel("mm 4096^3", "mm", (4096, 4096, 4096)),
    Kernel("mm 16384x1024x1024", "mm", (16384, 1024, 1024)),
    Kernel("conv 5x5 32->32 35x35 b64 (35x35 encoder)", "conv", (64, 32, 35, 35, 32, 5)),
    Kernel("conv 5x5 32->32 35x35 b256 (35x35 decoder, K=4)", "conv", (256, 32, 35, 35, 32, 5)),
    Kernel("conv 5x5 64->64 128x128 b8 (128x128 encoder/decoder)", "conv", (8, 64, 128, 128, 64, 5)),
    Kernel("conv 3x3 64->256 64x64 b16 (phase-decomposed stride-2 convT)", "conv", (16, 64, 64, 64, 256, 3)),
    Kernel("conv 3x3 128->128 64x64 b16", "conv", (16, 128, 64, 64, 128, 3)),
    Kernel("conv 1x1 256->256 64x64 b32", "conv", (32, 256, 64, 64, 256, 1)),
)


def host_state(samples: int = 10) -> str:
    """One line on how fast this machine runs right now: median and best GFLOP/s of a bf16 channels_last conv (the
    phase-decomposed convT shape) and an fp32 2048^3 matmul, ``samples`` calls each. On a shared host the bf16 rate
    has been seen to change 3x within an hour, so benchmark tables print this next to their ratios."""
    parts = []
    for name, precision in (("conv 3x3 64->256 64x64 b16", "bf16"), ("mm 2048^3", "fp32")):
        k = next(k for k in KERNELS if k.name.startswith(name))
        fn = k.make(DTYPES[precision])
        fn()
        rates = []
        for _ in range(samples):
            t0 = time.perf_counter()
            fn()
            rates.append(k.flops / (time.perf_counter() - t0) / 1e9)
        rates.sort()
        parts.append(f"{precision} {name}: median {rates[len(rates) // 2]:.0f}, best {rates[-1]:.0f} GFLOP/s")
    return "; ".join(parts)


def time_best(fn: Callable[[], object], reps: int, budget_s: float) -> float:
    """Best wall time of ``reps`` calls after one warm-up call; stops early once ``budget_s`` is spent."""
    t0 = time.perf_counter()
    fn()
    best = time.perf_counter() - t0
    spent = best
    for _ in range(reps):
        if spent > budget_s:
            break
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return best


def sweep(
    precision: str,
    kernels: Sequence[Kernel] = KERNELS,
    reps: int = 3,
    budget_s: float = 1.0,
    timer: Callable[[Callable[[], object], int, float], float] = time_best,
) -> list[tuple[Kernel, float]]:
    """GFLOP/s of the kernels in ``precision`` ("fp32" or "bf16"), in the order given.

    A kernel whose one call would take longer than ``budget_s`` at the best rate seen so far is skipped (left
    out of the result): where bf16 is emulated (~1 GFLOP/s on AVX2) only the small kernels run.
    """
    dtype = DTYPES[precision]
    out: list[tuple[Kernel, float]] = []
    best = 0.0
    for k in kernels:
        if best > 0 and k.flops / (best * 1e9) > budget_s:
            continue
        gflops = k.flops / timer(k.make(dtype), reps, budget_s) / 1e9
        out.append((k, gflops))
        best = max(best, gflops)
    return out


def peak(results: Sequence[tuple[Kernel, float]]) -> tuple[float, Kernel]:
    """The best GFLOP/s of a sweep and its kernel."""
    kernel, gflops = max(results, key=lambda r: r[1])
    return gflops, kernel


def measure_peaks(
    precisions: Sequence[str] = ("fp32", "bf16"), kernels: Sequence[Kernel] = KERNELS, reps: int = 3
) -> dict[str, tuple[float, Kernel]]:
    """{precision: (peak GFLOP/s, kernel)}: the max over the sweep of each precision."""
    return {p: peak(sweep(p, kernels, reps)) for p in precisions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precisions.split(",")
    results = {p: sweep(p, reps=args.reps) for p in precisions}
    print("| kernel | GFLOP | " + " | ".join(f"{p} GFLOP/s" for p in precisions) + " |")
    print("|---|---|" + "---|" * len(precisions))
    for k in KERNELS:
        row = " | ".join(next((f"{g:.0f}" for kk, g in results[p] if kk == k), "skipped") for p in precisions)
        print(f"| {k.name} | {k.flops / 1e9:.1f} | {row} |")
    for p in precisions:
        g, k = peak(results[p])
        print(f"peak {p}: {g:.0f} GFLOP/s ({k.name})")


if __name__ == "__main__":
    main()
