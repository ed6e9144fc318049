"""Time to quality: wall-clock training minutes until held-out FG-ARI first reaches 0.9, 0.95 and 0.99.

Runs ``slotlab train --config tetrominoes_quick seed=S run.root=ROOT run.name=seedS [overrides]`` for each seed
(one fresh subprocess per seed, so threads, the malloc tuning and the RNG start clean; the runs are sequential),
then reads each run's ``logs/version_0/metrics.csv`` (columns ``step``, ``val/fg_ari``,
``time/train_minutes``) and prints one line per seed. ``time/train_minutes`` is training time without
validation (slotlab's StepTimer), logged every ``trainer.log_every`` steps; the minutes at a validation step
are interpolated linearly between the neighbouring logged points (exact when the steps coincide, as with the
default val_every/log_every).

Usage::

    python benchmarks/time_to_quality.py --seeds 0,1,2                       # the real measurement (~30 min/seed)
    python benchmarks/time_to_quality.py --seeds 0 --root /tmp/ttq -- trainer.max_steps=4 trainer.val_every=2 \\
        data.train_size=64 data.eval_size=16 data.batch_size=8                # smoke test
    python benchmarks/time_to_quality.py --parse runs/ttq/seed0 runs/ttq/seed1  # only read finished runs
    python benchmarks/time_to_quality.py --seeds 0,1 --variant implicit -- \
        model.slot_attention.implicit_differentiation=true

``--markdown`` prints one table row per run (variant, seed, minutes to each threshold, final FG-ARI, failed seed),
headed by the machine (CPU kind, bf16 capability, precision auto), as benchmarks/RESULTS.md keeps them. A seed
counts as failed when slotlab's failed-seed monitor flagged it (``results.json``) or its last held-out FG-ARI is
below 0.5 (stuck in the "stripes" solution the paper names).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunCurve:
    steps: list[int]  # validation steps
    fg_ari: list[float]
    minutes: list[float]  # training minutes at each validation step (interpolated)


def read_curve(run_dir: Path) -> RunCurve:
    """Validation FG-ARI and training minutes from ``run_dir/logs/version_0/metrics.csv``."""
    path = Path(run_dir) / "logs" / "version_0" / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a finished slotlab run?")
    timed: dict[int, float] = {}
    vals: dict[int, float] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            if row.get("time/train_minutes"):
                timed[step] = max(timed.get(step, 0.0), float(row["time/train_minutes"]))
            if row.get("val/fg_ari"):
                vals[step] = float(row["val/fg_ari"])
    t_steps = [0, *sorted(timed)] if 0 not in timed else sorted(timed)
    t_mins = [timed.get(s, 0.0) for s in t_steps]
    steps = sorted(vals)
    return RunCurve(steps, [vals[s] for s in steps], [_interp(s, t_steps, t_mins) for s in steps])


def _interp(step: int, xs: list[int], ys: list[float]) -> float:
    """Linear interpolation (constant extrapolation at the ends; NaN without timing data)."""
    if len(xs) < 2:
        return ys[0] if ys else float("nan")
    i = bisect.bisect_left(xs, step)
    if i < len(xs) and xs[i] == step:
        return ys[i]
    if i == 0:
        return ys[0]
    if i == len(xs):
        return ys[-1]
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (step - x0) / (x1 - x0)


def first_reach(curve: RunCurve, threshold: float) -> tuple[int, float] | None:
    """(step, minutes) of the first validation with FG-ARI >= threshold, or None."""
    for s, a, m in zip(curve.steps, curve.fg_ari, curve.minutes, strict=True):
        if a >= threshold:
            return s, m
    return None


def report_line(label: str, curve: RunCurve, thresholds: list[float]) -> str:
    parts = [label + ":"]
    for t in thresholds:
        hit = first_reach(curve, t)
        parts.append(f"FG-ARI>={t:g} at {hit[1]:.1f} min (step {hit[0]});" if hit else f"FG-ARI>={t:g} not reached;")
    if curve.steps:
        parts.append(
            f"last val {curve.fg_ari[-1]:.3f} at step {curve.steps[-1]} ({curve.minutes[-1]:.1f} min), "
            f"best {max(curve.fg_ari):.3f}"
        )
    else:
        parts.append("no validation logged")
    return " ".join(parts)


def failed_seed(run_dir: Path, curve: RunCurve) -> bool:
    """Flagged by the failed-seed monitor, or ended below 0.5 FG-ARI."""
    results = Path(run_dir) / "results.json"
    if results.exists() and json.loads(results.read_text()).get("failed_seed"):
        return True
    return bool(curve.fg_ari) and curve.fg_ari[-1] < 0.5


def markdown_row(variant: str, label: str, run_dir: Path, curve: RunCurve, thresholds: list[float]) -> str:
    cells = [variant, label]
    for t in thresholds:
        hit = first_reach(curve, t)
        cells.append(f"{hit[1]:.1f} (step {hit[0]})" if hit else "-")
    last = f"{curve.fg_ari[-1]:.3f} at {curve.minutes[-1]:.1f} min" if curve.steps else "-"
    cells += [last, "yes" if failed_seed(run_dir, curve) else "no"]
    return "| " + " | ".join(cells) + " |"


def markdown_header(thresholds: list[float]) -> str:
    cols = ["variant", "seed", *[f"min to {t:g}" for t in thresholds], "last val", "failed seed"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def train_seed(config: str, seed: int, root: Path, overrides: list[str], variant: str = "") -> Path:
    name = f"{variant}-seed{seed}" if variant else f"seed{seed}"
    cmd = [
        sys.executable, "-m", "slotlab.cli", "train", "--config", config,
        f"seed={seed}", f"run.root={root}", f"run.name={name}", "trainer.progress_bar=false", *overrides,
    ]  # fmt: skip
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"seed {seed}: wall {(time.perf_counter() - t0) / 60:.1f} min (including start-up and validation)")
    return root / name


def run_machine(run_dir: Path) -> str | None:
    """The machine a finished run names in its results.json (None if it has none)."""
    try:
        return json.loads((Path(run_dir) / "results.json").read_text()).get("machine")
    except (OSError, ValueError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0", help="comma list of seeds")
    ap.add_argument("--config", default="tetrominoes_quick")
    ap.add_argument("--root", default=None, help="run.root for the runs (default runs/ttq-<date-time>)")
    ap.add_argument("--thresholds", default="0.9,0.95,0.99")
    ap.add_argument("--variant", default="", help="a label for the overrides (run names and the table)")
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md table with the machine named")
    ap.add_argument("--parse", nargs="+", default=None, metavar="RUN_DIR", help="only read finished runs")
    ap.add_argument("overrides", nargs="*", help="config overrides passed to slotlab train (after --)")
    args = ap.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    if args.parse:
        runs = [(Path(p).name, Path(p)) for p in args.parse]
    else:
        root = Path(args.root or f"runs/ttq-{time.strftime('%Y%m%d-%H%M%S')}")
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append((f"seed {seed}", train_seed(args.config, seed, root, args.overrides, args.variant)))
    print(f"\ntime to quality ({args.config if not args.parse else 'parsed runs'}; training minutes, no validation):")
    for label, run_dir in runs:
        print(report_line(label, read_curve(run_dir), thresholds))
    if args.markdown:
        from slotlab.train.runtime import machine_description

        # Each run's results.json names what it ran on (runs from before that field: this machine, said so).
        here = machine_description()
        unnamed = f"{here} (this machine; the run does not name its own)"
        machines = {run_machine(run_dir) or unnamed for _, run_dir in runs}
        for m in sorted(machines):
            print(f"\nmachine: {m}")
        print(markdown_header(thresholds))
        for label, run_dir in runs:
            print(markdown_row(args.variant or "-", label, run_dir, read_curve(run_dir), thresholds))


if __name__ == "__main__":
    main()
