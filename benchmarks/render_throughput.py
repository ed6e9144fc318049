"""Throughput of the procedural data generators (CLEVR-like ray caster, Multi-dSprites).

Usage: ``python benchmarks/render_throughput.py [--threads 2] [--clevr-images 256] [--sprites-images 4096]``
(``--threads 1,2`` measures several thread counts.)

Prints one line per configuration, e.g. ``clevr6 320x240: 57.3 images/s (2 threads)``. Each measurement
starts with a warm-up call, then times one ``generate`` call over fresh indices (so scene sampling, the
visibility re-sampling, rendering and packing are all included). The CPU time per image (all threads)
is printed too: on a machine shared with other jobs it is a steadier figure than the wall-clock rate.
"""

from __future__ import annotations

import argparse
import time

import torch

from slotlab.data import clevr_render, multi_dsprites


def _rate(fn, count: int) -> tuple[float, float]:
    """(images per second of wall time, CPU milliseconds per image) of ``fn(count)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(count)
    return count / (time.perf_counter() - t0), (time.process_time() - c0) / count * 1e3


def _sprites(n: int, variant: str) -> None:
    multi_dsprites.generate(0, 0, n, variant=variant)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="2", help="comma-separated torch intra-op thread counts")
    ap.add_argument("--clevr-images", type=int, default=256)
    ap.add_argument("--sprites-images", type=int, default=4096)
    ap.add_argument("--clevr-variants", default="clevr6,clevr10")
    args = ap.parse_args()
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        th = f"({threads} thread{'s' if threads > 1 else ''})"
        for variant in args.clevr_variants.split(","):
            clevr_render.generate(0, 10**6, 32, variant=variant)  # warm-up
            r, cpu = _rate(lambda n, v=variant: clevr_render.generate(0, 0, n, variant=v), args.clevr_images)
            print(f"{variant} 320x240: {r:.1f} images/s {th}; {cpu:.1f} ms CPU/image", flush=True)
        for variant in multi_dsprites.VARIANTS:
            multi_dsprites.generate(0, 10**6, 256, variant=variant)  # warm-up
            r, cpu = _rate(lambda n, v=variant: _sprites(n, v), args.sprites_images)
            line = f"multi_dsprites/{variant} 64x64: {r:.1f} images/s {th}; {cpu:.2f} ms CPU/image"
            print(line, flush=True)


if __name__ == "__main__":
    main()
