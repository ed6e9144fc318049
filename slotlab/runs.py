"""Run folders: where a run's files live, and the one way to find a run folder from a checkpoint path.

A run folder holds ``config.yaml`` (the full, validated config), ``checkpoints/`` (``last.ckpt`` and the best by
the task's held-out metric), ``logs/`` (CSV), ``tb/`` (TensorBoard), ``figures/``, ``results.json`` and the
evaluation files of ``slotlab eval``. Training infrastructure; not part of the paper.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from slotlab.atomic import write_json, write_text
from slotlab.errors import RunDirError  # also importable from here

LAST = "last.ckpt"

RUN_DIR_ENV = "SLOTLAB_RUN_DIR"


def launched_rank() -> int:
    """The global rank of this process when a launcher (torchrun, SLURM, Lightning's DDP) started it, else 0."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def new_run_dir(cfg: dict[str, Any], config_name: str, secondary: bool = False) -> Path:
    """Create the run folder and take its lock for this process (:mod:`slotlab.run_lock`; released by
    ``release_run_lock`` or when the process ends). ``secondary``: a non-zero rank of a multi-process job, which
    uses the folder that rank 0 creates and locks (from the environment when Lightning launched it, else
    ``run.name``)."""
    if secondary:
        if os.environ.get(RUN_DIR_ENV):
            return Path(os.environ[RUN_DIR_ENV])
        if not cfg["run"]["name"]:
            raise RunDirError("multi-process launch (torchrun / SLURM): set run.name so all processes share a folder")
        run_dir = Path(cfg["run"]["root"]) / cfg["run"]["name"]
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    root = Path(cfg["run"]["root"])
    name = cfg["run"]["name"] or f"{config_name}-seed{cfg['seed']}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = root / name
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a folder; choose another run.name or run.root")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot write the run folder {run_dir}: {e}. Choose a writable run.root.") from e
    # The folder is claimed under its lock (held until training ends: slotlab.run_lock), so two starts with one
    # run.name cannot both find it empty, and a folder another process trains into is named as such.
    from slotlab.run_lock import LOCK_NAME, acquire_run_lock, release_run_lock

    taken = acquire_run_lock(run_dir, new_run=True)
    try:
        if any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            started = any((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").is_dir() else False
            what = (
                "" if started else " (it has no checkpoint: a start that failed or stopped early; resuming restarts it)"
            )
            raise RunDirError(
                f"run folder {run_dir} already exists and is not empty{what}; choose another run.name, or resume it "
                f"with: slotlab train --resume {run_dir}"
            )
        try:
            probe = run_dir / ".write_test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise RunDirError(f"cannot write the run folder {run_dir}: {e}. Choose a writable run.root.") from e
        dump_config(cfg, run_dir / "config.yaml")
    except BaseException:
        if taken:
            release_run_lock(run_dir)
        raise
    return run_dir


def dump_config(cfg: dict[str, Any], path: Path) -> None:
    """Write a run's config as YAML (atomically)."""
    write_text(path, yaml.safe_dump(cfg, sort_keys=False))


def run_dir_of(checkpoint: str | os.PathLike[str]) -> Path:
    """The run folder of a checkpoint: ``RUN/checkpoints/x.ckpt`` -> ``RUN``; any other file -> its folder; a
    folder -> itself."""
    p = Path(checkpoint)
    if p.is_dir():
        return p
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """A checkpoint path given as a file or a run folder -> the file (a folder's ``checkpoints/last.ckpt``)."""
    p = Path(path)
    return p / "checkpoints" / LAST if p.is_dir() else p


def write_results(run_dir: Path, result: dict[str, Any]) -> Path:
    """Write ``results.json``; a previous one of another step (a finished run trained longer) is kept as
    ``results-stepN.json`` rather than overwritten."""
    path = Path(run_dir) / "results.json"
    if path.exists():
        try:
            old_step = json.loads(path.read_text()).get("global_step")
        except (OSError, ValueError, AttributeError):
            old_step = None
        if old_step != result.get("global_step"):
            keep = path.with_name(f"results-step{old_step}.json" if isinstance(old_step, int) else "results-old.json")
            n = 1
            while keep.exists():
                n += 1
                keep = keep.with_name(f"{keep.stem.split('.')[0]}.{n}.json")
            os.replace(path, keep)
    write_json(path, result)
    return path
