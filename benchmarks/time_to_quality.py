"""Time to quality of any preset: training steps and minutes until the held-out score first reaches a target, the
final score on the test split, the machine, and the failed-seed rate, one row per seed.

Trains each seed (``slotlab train --config CONFIG seed=S run.root=ROOT run.name=seedS trainer.max_minutes=M
[overrides]``, one fresh subprocess per seed, sequential), or with ``--runs`` reads finished (or still running)
run folders without training. For each run:

- **steps and minutes to the target**: the first validation whose task metric (the one its best checkpoint is
  chosen by: ``val/fg_ari`` for object discovery, ``val/ap_inf`` for set prediction) reaches ``--target``, on the
  ``eval`` split as logged in ``logs/version_*/metrics.csv`` (every version: a resumed run continues there).
  Minutes are ``time/train_minutes`` (training time without validation, slotlab's StepTimer), interpolated
  linearly to the validation step. A seed that slotlab restarted after a failed seed (``NAME-restart1``, ...) is
  one row: the earlier attempts' steps and minutes are added (a restart counts in the time);
- **final test score**: the task's headline score (FG-ARI, AP) of the run's ``last.ckpt`` (``--checkpoint best``:
  its best checkpoint, chosen on the eval split, within ``--minutes``) on the ``test`` split, computed by
  :func:`slotlab.evaluate.evaluate_checkpoint`, the code of ``slotlab eval RUN --split test``;
- **machine**: what the run's ``results.json`` names (runs without one: this machine, said so);
- **failed seed**: flagged by slotlab's failed-seed monitor (``FAILED_SEED.txt``, ``results.json``, a restart
  folder), or the target not reached (within ``--minutes`` when given). The failed-seed rate is their share.

Usage::

    python benchmarks/time_to_quality.py --config configs/multi_dsprites_cpu.yaml --seeds 0 1 2 --target 0.9 \\
        --minutes 120                                                        # trains 3 seeds (up to 2 h each)
    python benchmarks/time_to_quality.py --runs runs/mds_s0 runs/mds_s1 runs/mds_s2 --target 0.9 --minutes 120
    python benchmarks/time_to_quality.py --seeds 0 --root /tmp/ttq --target 0.5 -- trainer.max_steps=4 \\
        trainer.val_every=2 data.train_size=64 data.eval_size=16 data.batch_size=8   # smoke test

``--thresholds`` adds one line per run with the minutes and steps to each of several thresholds; ``--no-test``
skips the test-split evaluation; ``--parse`` is the old name of ``--runs``.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "tetrominoes_quick"
DEFAULT_TASK = {"monitor": "val/fg_ari", "mode": "max", "score": ("FG-ARI", "fg_ari_mean")}


# ------------------------------------------------------------------------------------------------ reading runs
@dataclass
class RunCurve:
    steps: list[int]  # validation steps, as logged
    values: list[float]  # the task's held-out metric at each (eval split)
    minutes: list[float]  # training minutes at each validation step (interpolated)
    timed_steps: list[int] = field(default_factory=list)  # the steps with a logged time/train_minutes
    timed_minutes: list[float] = field(default_factory=list)

    def minutes_at(self, step: int) -> float:
        return _interp(step, self.timed_steps, self.timed_minutes)

    def last_step(self) -> int:
        return max([*self.steps, *self.timed_steps], default=0)

    def last_minutes(self) -> float:
        return self.timed_minutes[-1] if self.timed_minutes else float("nan")


def metrics_files(run_dir: Path) -> list[Path]:
    """``logs/version_*/metrics.csv`` in version order (a resumed run logs each session to a new version)."""
    files = list((Path(run_dir) / "logs").glob("version_*/metrics.csv"))
    return sorted(files, key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name[8:].isdigit() else -1)


def read_curve(run_dir: Path, column: str = "val/fg_ari") -> RunCurve:
    """The held-out ``column`` and training minutes of a run, from all its metrics.csv files (later versions win
    where a step repeats: a resumed session logs it again)."""
    files = metrics_files(run_dir)
    if not files:
        raise FileNotFoundError(
            f"{Path(run_dir) / 'logs'}/version_*/metrics.csv not found: is {run_dir} a slotlab run?"
        )
    timed: dict[int, float] = {}
    vals: dict[int, float] = {}
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("step"):
                    continue
                step = int(float(row["step"]))
                if row.get("time/train_minutes"):
                    timed[step] = max(timed.get(step, 0.0), float(row["time/train_minutes"]))
                if row.get(column):
                    vals[step] = float(row[column])
    t_steps = sorted(timed) if 0 in timed else [0, *sorted(timed)]
    t_mins = [timed.get(s, 0.0) for s in t_steps]
    steps = sorted(vals)
    minutes = [_interp(s, t_steps, t_mins) for s in steps]
    return RunCurve(steps, [vals[s] for s in steps], minutes, t_steps, t_mins)


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


def first_reach(curve: RunCurve, threshold: float, mode: str = "max") -> tuple[int, float] | None:
    """(step, minutes) of the first validation at or beyond ``threshold`` (``mode`` min: at or below), or None."""
    for s, v, m in zip(curve.steps, curve.values, curve.minutes, strict=True):
        if (v >= threshold) if mode == "max" else (v <= threshold):
            return s, m
    return None


def run_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config.yaml (safe YAML), or None."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return cfg if isinstance(cfg, dict) else None


def task_facts(run_dir: Path) -> dict[str, Any]:
    """The run's task: its held-out metric column and direction, and its headline score (name, results key)."""
    cfg = run_config(run_dir)
    if cfg is None:
        return dict(DEFAULT_TASK)
    from slotlab.tasks import get_task

    task = get_task(cfg.get("task", "object_discovery"))
    return {"monitor": task.monitor, "mode": getattr(task, "monitor_mode", "max"), "score": tuple(task.score)}


def _results(run_dir: Path) -> dict[str, Any]:
    try:
        res = json.loads((Path(run_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return res if isinstance(res, dict) else {}


def run_machine(run_dir: Path) -> str | None:
    """The machine a run names in its results.json (None if it has none)."""
    return _results(run_dir).get("machine")


def flagged_failed(run_dir: Path) -> bool:
    """Flagged by slotlab's failed-seed monitor (FAILED_SEED.txt, or results.json's ``failed_seed``)."""
    return (Path(run_dir) / "FAILED_SEED.txt").exists() or bool(_results(run_dir).get("failed_seed"))


def attempts_of(run_dir: Path) -> list[Path]:
    """A run and the folders slotlab restarted it into after failed seeds (``NAME-restart1``, ...), in order."""
    run_dir = Path(run_dir)
    base = Path(re.sub(r"-restart\d+$", "", str(run_dir)))
    out = [base] if base.is_dir() else []
    k = 1
    while (base.parent / f"{base.name}-restart{k}").is_dir():
        out.append(base.parent / f"{base.name}-restart{k}")
        k += 1
    return out or [run_dir]


# ------------------------------------------------------------------------------------------------ one seed
@dataclass
class SeedRow:
    label: str  # "seed 0"
    run_dir: Path  # the last attempt (its checkpoint is scored)
    attempts: list[Path]
    metric: str  # the held-out metric column
    score_name: str  # e.g. FG-ARI
    reach: tuple[int, float] | None  # (steps, minutes) to the target over all attempts, as logged
    last_value: float | None  # last held-out value of the last attempt
    steps: int  # training steps over all attempts
    minutes: float  # training minutes over all attempts
    steps_before: int  # of the attempts before the last one (added to the last one's steps)
    minutes_before: float
    flagged: bool  # the failed-seed monitor flagged an attempt (or slotlab restarted the seed)
    machine: str | None
    mode: str = "max"  # "max": higher is better
    test: str = "-"  # the test-split score cell
    test_value: float | None = None

    def failed(self, budget: float | None) -> str:
        """Why the seed failed ("monitor", "below target"), or "" when it did not."""
        if self.flagged:
            return "monitor"
        if self.reach is None or (budget is not None and self.reach[1] > budget):
            return "below target"
        return ""


def seed_row(label: str, run_dir: Path, target: float, facts: dict[str, Any]) -> SeedRow:
    """Read one seed: all its attempts, steps and minutes added up to the attempt that reached the target."""
    attempts = attempts_of(run_dir)
    steps_before, minutes_before, reach, curve = 0, 0.0, None, None
    for i, attempt in enumerate(attempts):
        curve = read_curve(attempt, facts["monitor"])
        hit = first_reach(curve, target, facts["mode"])
        if hit is not None and reach is None:
            reach = (steps_before + hit[0], minutes_before + hit[1])
        if i < len(attempts) - 1:
            steps_before += int(_results(attempt).get("global_step") or curve.last_step())
            minutes_before += _finite(curve.last_minutes())
    assert curve is not None
    last = attempts[-1]
    return SeedRow(
        label, last, attempts, facts["monitor"], facts["score"][0], reach, curve.values[-1] if curve.values else None,
        steps_before + curve.last_step(), minutes_before + curve.last_minutes(), steps_before, minutes_before,
        len(attempts) > 1 or any(flagged_failed(a) for a in attempts), run_machine(last), facts["mode"],
    )  # fmt: skip


def _finite(x: float) -> float:
    return x if x == x else 0.0  # NaN (no timing logged) adds nothing


def pick_checkpoint(row: SeedRow, which: str, budget: float | None, curve: RunCurve, mode: str) -> Path | None:
    """``last``: checkpoints/last.ckpt; ``best``: the best-*.ckpt (named by its eval-split value) whose step was
    trained within the budget (earlier attempts' minutes included)."""
    folder = row.run_dir / "checkpoints"
    if which == "last":
        return folder / "last.ckpt" if (folder / "last.ckpt").exists() else None
    best: list[tuple[float, Path]] = []
    for p in folder.glob("best-step*.ckpt"):
        m = re.match(r"best-step(\d+)-\D*?(-?\d+(?:\.\d+)?)\.ckpt$", p.name)
        if m and (budget is None or row.minutes_before + curve.minutes_at(int(m.group(1))) <= budget):
            best.append((float(m.group(2)) if mode == "max" else -float(m.group(2)), p))
    return max(best)[1] if best else None


def test_score(row: SeedRow, which: str, budget: float | None, facts: dict[str, Any]) -> None:
    """Score the row's checkpoint on the test split with ``slotlab eval RUN --split test``'s code
    (:func:`slotlab.evaluate.evaluate_checkpoint`, the run's K, T, number of images and noise seed); fills
    ``test`` (value, checkpoint, its step and training minutes) and ``test_value``."""
    curve = read_curve(row.run_dir, facts["monitor"])
    ckpt = pick_checkpoint(row, which, budget, curve, facts["mode"])
    if ckpt is None:
        row.test = f"- (no {which} checkpoint" + (f" within {budget:g} min)" if which == "best" and budget else ")")
        return
    from slotlab.errors import UserError
    from slotlab.evaluate import evaluate_checkpoint
    from slotlab.inference.checkpoint_io import load_checkpoint

    try:
        step = int(load_checkpoint(ckpt).get("global_step") or 0)
        res = evaluate_checkpoint(ckpt, split="test")
    except UserError as e:
        row.test = f"- ({e})"
        return
    value = res.get(facts["score"][1])
    row.test_value = None if value is None else float(value)
    minutes = row.minutes_before + curve.minutes_at(step)
    late = " (past the budget)" if budget is not None and minutes > budget else ""
    at = f"{ckpt.name}: step {row.steps_before + step}, {minutes:.1f} min{late}"
    row.test = f"{value:.4f} ({at}; {res.get('num_images')} images)" if value is not None else f"- ({at})"


# ------------------------------------------------------------------------------------------------ printing
def report_line(label: str, curve: RunCurve, thresholds: list[float], name: str = "FG-ARI", mode: str = "max") -> str:
    """One run: minutes and steps to each threshold, the last and best held-out value."""
    parts = [label + ":"]
    for t in thresholds:
        hit = first_reach(curve, t, mode)
        op = ">=" if mode == "max" else "<="
        parts.append(
            f"{name}{op}{t:g} at {hit[1]:.1f} min (step {hit[0]});" if hit else f"{name}{op}{t:g} not reached;"
        )
    if curve.steps:
        best = max(curve.values) if mode == "max" else min(curve.values)
        parts.append(
            f"last val {curve.values[-1]:.3f} at step {curve.steps[-1]} ({curve.minutes[-1]:.1f} min), best {best:.3f}"
        )
    else:
        parts.append("no validation logged")
    return " ".join(parts)


def table(rows: list[SeedRow], target: float, budget: float | None, which: str) -> str:
    """The markdown table, its machines and the summary (failed-seed rate, test scores)."""
    from slotlab.machine import machine_description

    here = f"{machine_description()} (this machine; the run does not name its own)"
    machines: list[str] = []
    for r in rows:
        if (r.machine or here) not in machines:
            machines.append(r.machine or here)
    name, metric = rows[0].score_name, rows[0].metric
    cols = ["seed", "run", f"steps to {target:g}", f"min to {target:g}", f"last {metric}", "steps, min trained",
            f"test {name} ({which} checkpoint)", "failed seed", "machine"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        reach = r.reach if r.reach and (budget is None or r.reach[1] <= budget) else None
        run = r.run_dir.name + (f" ({len(r.attempts)} attempts)" if len(r.attempts) > 1 else "")
        cells = [r.label, run, str(reach[0]) if reach else "-", f"{reach[1]:.1f}" if reach else "-",
                 f"{r.last_value:.4f}" if r.last_value is not None else "-", f"{r.steps}, {r.minutes:.1f}", r.test,
                 r.failed(budget) or "no", f"M{machines.index(r.machine or here) + 1}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"M{i + 1}: {m}" for i, m in enumerate(machines)]
    failed = [r for r in rows if r.failed(budget)]
    within = f" within {budget:g} min" if budget is not None else ""
    reached = [r.reach for r in rows if r.reach and (budget is None or r.reach[1] <= budget)]
    median = ""
    if reached:
        median = (f"; median {statistics.median(s for s, _ in reached):g} steps, "
                  f"{statistics.median(m for _, m in reached):.1f} min")  # fmt: skip
    op = ">=" if rows[0].mode == "max" else "<="
    lines.append(f"target: {metric} {op} {target:g} on the eval split (as logged){within}: reached by {len(reached)} "
                 f"of {len(rows)} seeds{median}")  # fmt: skip
    why = ", ".join(f"{r.label}: {r.failed(budget)}" for r in failed)
    lines.append(
        f"failed-seed rate: {len(failed)}/{len(rows)} ({len(failed) / len(rows):.0%})" + (f" ({why})" if why else "")
    )
    scores = [r.test_value for r in rows if r.test_value is not None]
    if scores:
        lines.append(f"test {name}: min {min(scores):.4f}, mean {statistics.fmean(scores):.4f}, max {max(scores):.4f} "
                     f"({len(scores)} seeds)")  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ training
def train_seed(config: str, seed: int, root: Path, overrides: list[str], variant: str = "",
               minutes: float | None = None) -> Path:  # fmt: skip
    """Train one seed in a fresh process; returns its run folder."""
    name = f"{variant}-seed{seed}" if variant else f"seed{seed}"
    budget = [f"trainer.max_minutes={minutes:g}"] if minutes is not None else []
    cmd = [
        sys.executable, "-m", "slotlab.cli", "train", "--config", config,
        f"seed={seed}", f"run.root={root}", f"run.name={name}", "trainer.progress_bar=false", *budget, *overrides,
    ]  # fmt: skip
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd)
    print(f"seed {seed}: exit {done.returncode}, wall {(time.perf_counter() - t0) / 60:.1f} min (with start-up and "
          "validation)", flush=True)  # fmt: skip
    return root / name


def _seeds(values: list[str]) -> list[int]:
    """``--seeds 0 1 2`` or ``--seeds 0,1,2``."""
    return [int(s) for v in values for s in v.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="preset name or YAML path (training)")
    ap.add_argument("--seeds", nargs="+", default=["0"], help="seeds to train: 0 1 2 (or 0,1,2)")
    ap.add_argument(
        "--runs", "--parse", nargs="+", default=None, metavar="RUN_DIR", help="read these runs; no training"
    )
    ap.add_argument("--target", type=float, default=0.9, help="the held-out score to reach (default 0.9)")
    ap.add_argument("--minutes", type=float, default=None, help="training budget per seed (trainer.max_minutes)")
    ap.add_argument("--checkpoint", choices=["last", "best"], default="last", help="the checkpoint scored on test")
    ap.add_argument("--no-test", action="store_true", help="skip the test-split evaluation")
    ap.add_argument("--root", default=None, help="run.root for trained runs (default runs/ttq-<date-time>)")
    ap.add_argument("--thresholds", default=None, help="also print minutes and steps to each of these, e.g. 0.9,0.95")
    ap.add_argument("--variant", default="", help="a label for the overrides (run names)")
    ap.add_argument("--markdown", action="store_true", help="(kept for old commands: the table is markdown)")
    ap.add_argument("overrides", nargs="*", help="config overrides passed to slotlab train (after --)")
    args = ap.parse_args(argv)
    if args.runs:
        firsts = list(dict.fromkeys(attempts_of(Path(p))[0] for p in args.runs))  # a restart folder: its seed's row
        runs = [(f"seed {(run_config(p) or {}).get('seed', '?')}", p) for p in firsts]
        what = "runs read"
    else:
        root = Path(args.root or f"runs/ttq-{time.strftime('%Y%m%d-%H%M%S')}")
        runs = [(f"seed {s}", train_seed(args.config, s, root, args.overrides, args.variant, args.minutes))
                for s in _seeds(args.seeds)]  # fmt: skip
        what = f"trained: {args.config}"
    rows = []
    for label, run_dir in runs:
        facts = task_facts(attempts_of(run_dir)[-1])
        try:
            row = seed_row(label, run_dir, args.target, facts)
        except FileNotFoundError as e:
            print(f"note: {label}: {e}; left out of the table", file=sys.stderr)
            continue
        if args.thresholds:
            for attempt in row.attempts:
                curve = read_curve(attempt, facts["monitor"])
                thresholds = [float(t) for t in args.thresholds.split(",")]
                print(report_line(attempt.name, curve, thresholds, facts["score"][0], facts["mode"]))
        if not args.no_test:
            test_score(row, args.checkpoint, args.minutes, facts)
        rows.append(row)
    if not rows:
        print("error: no run with a metrics.csv to read", file=sys.stderr)
        return 2
    print(f"\ntime to quality ({what}; training minutes, without validation):")
    print(table(rows, args.target, args.minutes, args.checkpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
