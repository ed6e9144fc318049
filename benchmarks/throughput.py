"""Training throughput of the object-discovery model: slotlab as ``slotlab train`` runs it vs a plain fp32 baseline.

For each image size (35x35 Tetrominoes, 64x64 Multi-dSprites, 128x128 CLEVR6; model sizes as in
``benchmarks/baseline.py``) one training step = uint8 batch -> float in [-1, 1] -> forward -> MSE -> backward ->
Adam step. Variants:

- ``slotlab``: the settings a user gets from ``slotlab train --config <dataset>``: precision and channels_last
  resolved as ``slotlab/train/runtime.py`` does (bf16 autocast only where it trains faster than fp32: AMX-bf16,
  or AVX-512-bf16 on AMD; channels_last on), glibc malloc tuned, factorised decoder, and ``trainer.compile`` resolved as
  ``slotlab/train/fit.py`` does (the default ``auto`` compiles the paper's 500k-step configs with torch.compile
  where it can run; the first step's extra time is reported as compile time). The Lightning loop itself is not
  included.
- ``baseline``: ``benchmarks/baseline.py`` (fp32, NCHW, plain decoder, einsum Slot Attention).
- optional (``--extras``): ``bf16`` (slotlab with bf16 autocast forced), ``fp32`` (slotlab in fp32, whatever
  ``precision: auto`` picks), ``nocl`` (channels_last off),
  ``eager`` (slotlab without torch.compile, whatever the config says), ``compile`` (torch.compile forced on),
  ``literalsa`` (Slot Attention with ``reassociate=False``: keys and values of all N inputs materialised,
  Algorithm 1 literally),
  ``nophase`` (transposed convolutions as PyTorch's ``conv_transpose2d`` + TF crop instead of the exact phase
  decomposition: stride 2 as one stride-1 convolution + pixel shuffle, stride 1 as the convolution with the flipped
  kernel; 128x128 only).

All variants of one size run in one process, interleaved (A, B, A, B, ... with the order reversed every other
round); the table gives medians and the speed-up over the baseline measured in that run. Because glibc malloc
tuning is process-wide, the in-process baseline runs with the tuned allocator too (which flatters the baseline);
``--malloc-off`` runs slotlab and baseline again in a child process without the tuning (rows marked "untuned",
from a separate, later run: compare them with care).

Achieved GFLOP/s = executed FLOPs of one step (``benchmarks/flops.py``) / median step time, shown as a fraction
of this machine's peak *for the step's precision* (fp32 or bf16): the best GFLOP/s of a sweep of GEMMs and
channels_last forward convolutions at the models' shapes and larger ones (``benchmarks/peaks.py``; warm-up, best
of 3, at start-up; or given with ``--peaks FP32,BF16`` in GFLOP/s). The best kernel of each precision also runs
right before every timed training step, and the best of all measurements is the peak: on a shared host whose speed
changes from second to second (bf16 kernels measured 422-1,020 GFLOP/s within one minute here), every step then
has peak measurements from the same conditions, and a peak measured while the machine was busier than during the
steps cannot make the fractions exceed 100% (with one probe per round, a 7-round run once showed 106 %). (A 2048^3
``torch.mm`` alone is not the machine's best: channels_last convolutions beat it, and steps made of them showed
175-209 % "of peak".) The table prints, per size, the peaks used.

Peak memory: each variant runs 2 training steps in a fresh subprocess; reported is the growth of the process's
peak resident set size (``VmHWM`` of /proc/self/status, reset with /proc/self/clear_refs just before the first
step) over the RSS at that point, i.e. activations, gradients, Adam state and allocator overhead, not the model
build or the Python/torch import. (``ru_maxrss`` is not used: Linux carries it over from the parent process
across fork + exec, so a subprocess of the benchmark would report the benchmark's own peak.)

Usage::

    python benchmarks/throughput.py --quick                      # all sizes, small batches (~2-3 min)
    python benchmarks/throughput.py --sizes 35 --batch 64 --rounds 5
    python benchmarks/throughput.py --sizes 64 --batch 16 --extras bf16,nocl,literalsa --malloc-off
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import SIZES, PlainObjectDiscovery  # noqa: E402
from flops import train_flops  # noqa: E402
from module import machine_line  # noqa: E402
from peaks import KERNELS, Kernel, measure_peaks  # noqa: E402

from slotlab.config import load_config  # noqa: E402
from slotlab.tasks.common import image_to_model  # noqa: E402
from slotlab.tasks.object_discovery import build_model  # noqa: E402
from slotlab.train.fit import compile_enabled  # noqa: E402
from slotlab.train.runtime import (  # noqa: E402
    resolve_accelerator,
    resolve_channels_last,
    resolve_precision,
    tune_malloc,
)

QUICK_BATCH = {"35": 16, "64": 8, "128": 2}
EXTRAS = ("bf16", "fp32", "nocl", "eager", "compile", "literalsa", "nophase")


class Variant:
    """A model + Adam + one fixed uint8 batch; ``step()`` runs one training step."""

    def __init__(self, name: str, size_key: str, batch: int, seed: int = 0) -> None:
        self.name = name
        size = SIZES[size_key]
        torch.manual_seed(seed)
        self.image = torch.randint(0, 256, (batch, 3, size.resolution, size.resolution), dtype=torch.uint8)
        self.decoder = "plain" if name == "baseline" else "factorised"
        self.slot_attention = "standard" if name in ("baseline", "slotlab+literalsa") else "reassociated"
        self.flops = train_flops(size_key, batch, self.decoder, self.slot_attention)
        self.compile_seconds: float | None = None
        self.compiled = False
        if name == "baseline":
            self.precision, self.channels_last = "32-true", False
            self.model: torch.nn.Module = PlainObjectDiscovery(size)
        else:
            cfg = load_config(size.config, [])
            t = cfg["trainer"]
            self.precision = resolve_precision(t["precision"], resolve_accelerator(t["accelerator"]))
            self.channels_last = resolve_channels_last(t["channels_last"])
            if name == "slotlab+bf16":
                self.precision = "bf16-mixed"
            if name == "slotlab+fp32":
                self.precision = "32-true"
            if name == "slotlab-nocl":
                self.channels_last = False
            self.model = build_model(cfg["model"], (size.resolution, size.resolution))
            if name == "slotlab+literalsa":
                self.model.slot_attention.reassociate = False
            if name == "slotlab-nophase":
                for m in self.model.modules():
                    if hasattr(m, "phase_decomposition"):
                        m.phase_decomposition = False
            if self.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            self.compiled = name == "slotlab+compile" or (name != "slotlab-eager" and compile_enabled(t))
            if self.compiled:
                self.model.compile()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=4e-4)
        self.bf16 = self.precision.startswith("bf16")

    def step(self) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            if self.name == "baseline":
                image = self.image.float().div_(127.5).sub_(1.0)
                loss = self.model.loss(image)
            else:
                image = image_to_model(self.image, self.channels_last)
                loss = self.model.loss(self.model(image), image)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @property
    def settings(self) -> str:
        s = f"{'bf16' if self.bf16 else 'fp32'}, {'CL' if self.channels_last else 'NCHW'}"
        s += f", {self.decoder} dec" + (", reassoc. SA" if self.slot_attention == "reassociated" else "")
        return s + (", torch.compile" if self.compiled else "")


def interleaved(
    steps: dict[str, Callable[[], None]],
    rounds: int,
    per_round: int,
    probes: dict[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each step, interleaved A, B, A, B, ... (order reversed every other round).

    ``probes`` (the peak kernels) run, and are timed, right before every step: on a machine whose speed changes
    from second to second (a shared host), each step then has peak measurements taken in the same conditions.
    """
    probes = probes or {}
    times: dict[str, list[float]] = {n: [] for n in [*steps, *probes]}
    for r in range(rounds):
        for name in list(steps) if r % 2 == 0 else list(reversed(steps)):
            for _ in range(per_round):
                for p, probe in probes.items():
                    t0 = time.perf_counter()
                    probe()
                    times[p].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - t0)
    return times


def measure_size(
    size_key: str,
    batch: int,
    names: list[str],
    rounds: int,
    per_round: int,
    peak_kernels: dict[str, Kernel] | None = None,
) -> dict[str, dict]:
    """Interleaved step times of the variants of one size; returns per-variant results.

    ``peak_kernels`` ({"fp32": kernel, "bf16": kernel}, the best kernels of the start-up peak sweep): each runs once
    per round, interleaved with the training steps, so that the peaks are also measured under the steps' load;
    their best GFLOP/s are returned as ``results["_peaks"]``.
    """
    # Each size compiles its own model: without a reset, dynamo counts the sizes' graphs as recompilations of the
    # same forward and falls back to eager after 8 (config.recompile_limit), silently, in a multi-size run.
    torch._dynamo.reset()
    variants = {n: Variant(n, size_key, batch) for n in names}
    results: dict[str, dict] = {}
    for v in variants.values():  # warm-up (and compilation)
        t0 = time.perf_counter()
        v.step()
        first = time.perf_counter() - t0
        v.step()
        results[v.name] = {"first_step_s": first}
    steps: dict[str, Callable[[], None]] = {n: v.step for n, v in variants.items()}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    probes = {}
    for p, k in (peak_kernels or {}).items():
        probes[f"_peak_{p}"] = k.make(dtypes[p])
        probes[f"_peak_{p}"]()
    times = interleaved(steps, rounds, per_round, probes)
    results["_peaks"] = {p: k.flops / min(times[f"_peak_{p}"]) / 1e9 for p, k in (peak_kernels or {}).items()}
    for n, v in variants.items():
        med = statistics.median(times[n])
        results[n].update(
            step_s=med,
            img_s=batch / med,
            gflop=v.flops / 1e9,
            gflop_s=v.flops / med / 1e9,
            settings=v.settings,
            n=len(times[n]),
        )
        if v.compiled:
            results[n]["compile_s"] = results[n]["first_step_s"] - med
    return results


def _status_kb(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def memory_worker(name: str, size_key: str, batch: int) -> None:
    """In a fresh process: growth of the peak RSS over 2 training steps, in MB (printed as JSON).

    Uses /proc/self/status VmHWM (peak RSS of this process image) after resetting it with /proc/self/clear_refs
    where possible; ``ru_maxrss`` is only the fallback, because Linux carries it over from the parent across
    fork + exec (a child of a big parent would report the parent's peak).
    """
    if name != "baseline" and load_config(SIZES[size_key].config, [])["trainer"]["tune_malloc"]:
        tune_malloc()
    v = Variant(name, size_key, batch)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before, how = _status_kb("VmRSS"), "VmHWM"
    except OSError:
        before, how = _status_kb("VmHWM"), "VmHWM (not reset)"
    if before is None:
        before, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    v.step()
    v.step()
    after = _status_kb("VmHWM") if how.startswith("VmHWM") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_delta_mb": (after - before) / 1024, "how": how}))


def child(args: list[str]) -> str:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def fmt_opt(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="35,64,128", help="comma list of 35, 64, 128")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 64; --quick: 16/8/2 by size)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, --quick 3)")
    ap.add_argument("--steps-per-round", type=int, default=1)
    ap.add_argument("--extras", default="", help=f"comma list of extra variants: {', '.join(EXTRAS)}")
    ap.add_argument("--malloc-off", action="store_true", help="also run slotlab and baseline untuned (child)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-RSS subprocesses")
    ap.add_argument("--peaks", default=None, help="FP32,BF16 peaks in GFLOP/s instead of measuring")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, as slotlab)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-tune-malloc", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json-out", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--variants", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes.split(",")
    batches = {s: args.batch or (QUICK_BATCH[s] if args.quick else 64) for s in sizes}
    rounds = args.rounds or (3 if args.quick else 5)
    if args.memory_worker:
        memory_worker(args.memory_worker, sizes[0], batches[sizes[0]])
        return
    if args.variants:
        names = args.variants.split(",")
    else:
        extras = [e for e in args.extras.split(",") if e]
        unknown = set(extras) - set(EXTRAS)
        if unknown:
            ap.error(f"unknown extras {sorted(unknown)}; choose from {EXTRAS}")
        extra_names = {
            "bf16": "slotlab+bf16",
            "fp32": "slotlab+fp32",
            "nocl": "slotlab-nocl",
            "eager": "slotlab-eager",
            "compile": "slotlab+compile",
            "literalsa": "slotlab+literalsa",
            "nophase": "slotlab-nophase",
        }
        names = ["slotlab", "baseline"] + [extra_names[e] for e in extras]
    tuned = False
    if not args.no_tune_malloc:
        tuned = tune_malloc()  # as slotlab train does (config default trainer.tune_malloc: true)

    if args.json_out:  # child run for --malloc-off
        out = {s: measure_size(s, batches[s], names, rounds, args.steps_per_round) for s in sizes}
        print("JSON" + json.dumps(out))
        return

    print(f"machine: {machine_line()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; load average {os.getloadavg()[0]:.1f}; malloc tuned: {tuned}")
    best_kernels: dict[str, Kernel] = {}
    if args.peaks:
        fp32_peak, bf16_peak = (float(x) for x in args.peaks.split(","))
        print(f"peaks (given): fp32 {fp32_peak:.0f} GFLOP/s, bf16 {bf16_peak:.0f} GFLOP/s")
    else:
        measured = measure_peaks(("fp32", "bf16"), KERNELS)
        (fp32_peak, k32), (bf16_peak, k16) = measured["fp32"], measured["bf16"]
        best_kernels = {"fp32": k32, "bf16": k16}
        print(
            f"peaks (best of a sweep of {len(KERNELS)} GEMM and channels_last conv kernels, benchmarks/peaks.py): "
            f"fp32 {fp32_peak:.0f} GFLOP/s ({k32.name}), bf16 {bf16_peak:.0f} GFLOP/s ({k16.name}); these two "
            "kernels also run before every timed step and the best of all is used. % of peak = GFLOP/s / the "
            "peak of the step's precision"
        )
    print(f"{rounds} interleaved rounds x {args.steps_per_round} step(s) per variant after 2 warm-up steps")
    if not args.no_memory:
        print("peak RSS +MB: growth of VmHWM (/proc/self/status) over 2 steps, one fresh subprocess per variant")
    print()

    all_results = {}
    peaks = {}
    for s in sizes:
        all_results[s] = measure_size(s, batches[s], names, rounds, args.steps_per_round, best_kernels)
        p = all_results[s].pop("_peaks")
        peaks[s] = (max(fp32_peak, p.get("fp32", 0.0)), max(bf16_peak, p.get("bf16", 0.0)))
        if not args.no_memory:
            for n in names:
                try:
                    out = child(
                        ["--memory-worker", n, "--sizes", s, "--batch", str(batches[s])]
                        + (["--threads", str(args.threads)] if args.threads else [])
                    )
                    all_results[s][n]["peak_rss_delta_mb"] = json.loads(out.strip().splitlines()[-1])[
                        "peak_rss_delta_mb"
                    ]
                except (subprocess.CalledProcessError, ValueError) as e:
                    print(f"memory worker {n} {s} failed: {e}")
        print(f"(size {s} done)", flush=True)
    if args.malloc_off:
        cmd = [
            "--json-out",
            "--no-tune-malloc",
            "--variants",
            "slotlab,baseline",
            "--sizes",
            args.sizes,
            "--rounds",
            str(rounds),
            "--steps-per-round",
            str(args.steps_per_round),
        ]
        cmd += ["--batch", str(args.batch)] if args.batch else []
        cmd += ["--quick"] if args.quick else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        line = [x for x in child(cmd).splitlines() if x.startswith("JSON")][-1]
        for s, res in json.loads(line[4:]).items():
            res.pop("_peaks", None)
            for n, r in res.items():
                all_results[s][f"{n} (untuned malloc, child run)"] = r

    print(
        "| size | batch | variant | settings | step s | img/s | speed-up vs baseline | GFLOP/step | GFLOP/s "
        "| peak GFLOP/s | % of peak | peak RSS +MB | compile s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        res = all_results[s]
        base = res["baseline"]["step_s"]
        for n, r in res.items():
            mem = r.get("peak_rss_delta_mb")
            prec = "bf16" if r["settings"].startswith("bf16") else "fp32"
            pk = peaks[s][0] if prec == "fp32" else peaks[s][1]
            print(
                f"| {SIZES[s].name} | {batches[s]} | {n} | {r['settings']} | {r['step_s']:.3f} | {r['img_s']:.1f} "
                f"| {base / r['step_s']:.2f}x | {r['gflop']:.1f} | {r['gflop_s']:.1f} "
                f"| {pk:.0f} ({prec}) | {100 * r['gflop_s'] / pk:.0f}% "
                f"| {'' if mem is None else f'{mem:.0f}'} | {fmt_opt(r.get('compile_s'))} |"
            )
    for s in sizes:
        print(f"peaks used for {SIZES[s].name}: fp32 {peaks[s][0]:.1f} GFLOP/s, bf16 {peaks[s][1]:.1f} GFLOP/s")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
