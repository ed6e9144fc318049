"""Throughput of the procedural data generators (CLEVR-like ray caster, Multi-dSprites).

Usage: ``python benchmarks/render_throughput.py [--threads 2] [--clevr-images 256] [--sprites-images 4096]``

Prints one line per configuration, e.g. ``clevr6 320x240: 57.3 images/s (2 threads)``. Each measurement
starts with a warm-up call, then times one ``generate`` call over fresh indices (so scene sampling, the
visibility re-sampling, rendering and packing are all included).
"""

from __future__ import annotations

import argparse
import time

import torch

from slotlab.data import clevr_render, multi_dsprites


def _rate(fn, count: int) -> float:
    t0 = time.perf_counter()
    fn(count)
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clevr-images", type=int, default=256)
    ap.add_argument("--sprites-images", type=int, default=4096)
    ap.add_argument("--clevr-variants", default="clevr6,clevr10")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    th = f"({args.threads} threads)"

    for variant in args.clevr_variants.split(","):
        clevr_render.generate(0, 10**6, 32, variant=variant)  # warm-up
        r = _rate(lambda n, v=variant: clevr_render.generate(0, 0, n, variant=v), args.clevr_images)
        print(f"{variant} 320x240: {r:.1f} images/s {th}", flush=True)
    for variant in multi_dsprites.VARIANTS:
        multi_dsprites.generate(0, 10**6, 256, variant=variant)  # warm-up
        r = _rate(lambda n, v=variant: multi_dsprites.generate(0, 0, n, variant=v), args.sprites_images)
        print(f"multi_dsprites/{variant} 64x64: {r:.1f} images/s {th}", flush=True)


if __name__ == "__main__":
    main()
