"""Recipe sweep: many short ``slotlab train`` runs side by side on one machine, compared in steps.

Made for a lent GPU (one chip, many CPU cores, minutes of time): each line of a sweep file is one run, and all runs
start at once, each a ``slotlab train`` subprocess with one CPU thread, so a dozen variants of a CPU preset
share the chip. Their minutes say nothing about a CPU (the runs share the chip); their held-out curves **per step**
are what transfers to a CPU run of the same recipe, so that is what this compares.

Sweep file: one run per line, ``NAME CONFIG [key=value ...]``; ``#`` starts a comment. Every run also gets
``run.root=ROOT run.name=NAME trainer.threads=1 trainer.progress_bar=false trainer.max_minutes=MINUTES`` and the
``--common`` overrides. Expensive datasets (the CLEVR renders) are generated into the cache first, once, with all
cores (``slotlab data generate``), so that the runs do not all render them.

At the end the held-out curve of every run (``time_to_quality.py --runs ... --no-test``) is printed, and
``--pack FILE`` writes one tar.gz of the run folders without checkpoints or TensorBoard events (logs, configs,
results, the newest figures).

Usage::

    python benchmarks/recipe_sweep.py benchmarks/sweeps/clevr6_mds.txt --root runs/sweep --minutes 7.5 \\
        --common trainer.compile=false --wall-minutes 8.5 --pack "$OUT/sweep.tar.gz"
    python benchmarks/recipe_sweep.py SWEEP --root /tmp/sw --minutes 0.3 --common data.train_size=64   # smoke
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = "import sys; from slotlab.cli import main; sys.exit(main())"


def read_sweep(path: Path) -> list[tuple[str, str, list[str]]]:
    runs = []
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            if len(words) < 2:
                raise SystemExit(f"error: {path}: a run needs NAME CONFIG [overrides]: {line!r}")
            runs.append((words[0], words[1], words[2:]))
    names = [r[0] for r in runs]
    if len(set(names)) != len(names):
        raise SystemExit(f"error: {path}: run names repeat")
    return runs


def slotlab(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI, *args]


def generate_data(runs: list[tuple[str, str, list[str]]], common: list[str]) -> None:
    """Render every expensive dataset the runs train and validate on, once, with all cores."""
    from slotlab.config import load_config
    from slotlab.data.registry import get_dataset

    done = set()
    for _, config, overrides in runs:
        cfg = load_config(config, [*common, *overrides])
        data = cfg["data"]
        info = get_dataset(data["name"], kind=None)
        if not getattr(info, "expensive", False):
            continue
        for split, num in (("train", data["train_size"]), ("eval", data["eval_size"])):
            key = (data["name"], split, num, data["seed"])
            if key not in done:
                done.add(key)
                cmd = [
                    "data",
                    "generate",
                    data["name"],
                    "--split",
                    split,
                    "--num",
                    str(num),
                    "--seed",
                    str(data["seed"]),
                ]
                if data.get("cache_dir"):
                    cmd += ["--out", str(data["cache_dir"])]
                subprocess.run(slotlab(*cmd), check=True)


def keep(path: Path) -> bool:
    """What a pack holds: no checkpoints, no TensorBoard events, and of the figures only the newest of each kind."""
    if {"checkpoints", "tb"} & set(path.parts) or path.suffix == ".ckpt":
        return False
    if path.parent.name == "figures" and path.name != "latest.png":
        newest = max(path.parent.glob(path.name.split("step_")[0] + "step_*.png"), default=path)
        return path == newest
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", type=Path, help="sweep file: NAME CONFIG [key=value ...] per line")
    ap.add_argument("--root", default="runs/sweep", help="run folders go here")
    ap.add_argument("--minutes", type=float, required=True, help="training minutes of every run")
    ap.add_argument("--common", nargs="*", default=[], help="overrides given to every run")
    ap.add_argument(
        "--wall-minutes", type=float, default=None, help="stop runs still going after this long (then print and pack)"
    )
    ap.add_argument("--pack", type=Path, default=None, help="write the run folders (no checkpoints) to this tar.gz")
    args = ap.parse_args(argv)

    runs = read_sweep(args.sweep)
    generate_data(runs, args.common)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    procs = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name, config, overrides in runs:
        fixed = [f"run.root={root}", f"run.name={name}", "trainer.threads=1", "trainer.progress_bar=false"]
        cmd = slotlab(
            "train", "--config", config, *fixed, f"trainer.max_minutes={args.minutes}", *args.common, *overrides
        )
        log = open(root / f"{name}.log", "w")  # noqa: SIM115 (closed below, after the process ends)
        log.write(" ".join(shlex.quote(c) for c in cmd[3:]) + "\n")
        log.flush()
        procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    start = time.monotonic()
    for name, proc, log in procs:
        left = None if args.wall_minutes is None else max(1.0, args.wall_minutes * 60 - (time.monotonic() - start))
        try:
            rc = proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            proc.terminate()  # a run past the sweep's wall time: its logged curve is kept, its final line is not
            rc = proc.wait()
        log.close()
        print(f"{name}: rc={rc} after {(time.monotonic() - start) / 60:.1f} min", flush=True)
    folders = [str(root / name) for name, _, _ in runs if (root / name).is_dir()]
    if folders:
        subprocess.run(
            [sys.executable, str(HERE / "time_to_quality.py"), "--runs", *folders, "--no-test", "--target", "0.9"]
        )
    if args.pack:
        with tarfile.open(args.pack, "w:gz") as tar:
            for path in sorted(root.rglob("*")):
                if path.is_file() and keep(path):
                    tar.add(path, arcname=str(path.relative_to(root.parent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
