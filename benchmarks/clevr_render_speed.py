"""Speed of the built-in CLEVR renderer (slotlab.data.clevr_render) at 320x240: images per second.

Usage: ``python benchmarks/clevr_render_speed.py [--threads 2] [--images 128] [--variants clevr6,clevr10]``

Prints the machine (CPU model, cores, load average before and after: other jobs on a shared machine slow the
figure down), then one line per variant: images/s of wall time in one process with ``--threads`` torch threads,
and the CPU time per image (all threads; steadier than wall time on a shared machine). ``--processes 2`` also
measures 2 worker processes of 1 thread each, the way ``slotlab data generate`` renders. Each measurement starts
with a warm-up call, then times ``generate`` over fresh indices (scene sampling, the visibility rule, rendering
and packing all included).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from slotlab.data import clevr_render


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _render(variant: str, start: int, count: int) -> None:
    torch.set_num_threads(1)
    clevr_render.generate(0, start, count, variant=variant)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--variants", default="clevr6,clevr10")
    ap.add_argument("--processes", type=int, default=0, help="also measure this many 1-thread processes")
    args = ap.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}; load average {_load()}")
    torch.set_num_threads(args.threads)
    for variant in args.variants.split(","):
        clevr_render.generate(0, 10**6, 16, variant=variant)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        clevr_render.generate(0, 0, args.images, variant=variant)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{variant} 320x240: {args.images / wall:.1f} images/s ({args.threads} threads, 1 process); "
              f"{cpu / args.images * 1e3:.1f} ms CPU/image", flush=True)  # fmt: skip
        if args.processes:
            per = args.images // args.processes
            with ProcessPoolExecutor(args.processes) as ex:
                list(ex.map(_render, [variant] * args.processes, [10**6] * args.processes, [4] * args.processes))
                t0 = time.perf_counter()
                list(ex.map(_render, [variant] * args.processes, [i * per for i in range(args.processes)],
                            [per] * args.processes))  # fmt: skip
                wall = time.perf_counter() - t0
            print(f"{variant} 320x240: {per * args.processes / wall:.1f} images/s ({args.processes} processes "
                  "x 1 thread)", flush=True)  # fmt: skip
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
