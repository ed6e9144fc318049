"""What ``slotlab train --resume RUN_DIR [key=value ...]`` does: which checkpoint it continues from, which config,
which overrides it accepts, and what it records. The rules (also in the README's Reliability section):

- **Checkpoint**: ``checkpoints/last.ckpt``; when it is damaged (a truncated or unreadable file), the readable
  ``best-*.ckpt`` or ``kept-*.ckpt`` (``trainer.keep_every``) of the highest step, saying so. Leftover ``*.tmp``
  files of an interrupted write are deleted (a checkpoint is only ever complete under its final name). A run
  folder without any checkpoint (a start that failed or was stopped before its first checkpoint) starts from
  step 0 with its ``config.yaml``; then any override is accepted, as nothing was trained yet.
- **Config**: the one the checkpoint was trained with (stored in it), so the weights always fit the model.
- **Overrides** may change only :func:`safe_on_resume` keys: how long the run goes and how it is executed, not
  what it computes. Any other change (data, model, optimiser, seeds, ...) is refused with a message naming
  every such key, also when it comes from a hand-edited ``config.yaml``. Exception: weights imported by
  ``slotlab import-official`` and not trained here yet may be fine-tuned with any data / optimiser / trainer
  settings (``model.*`` must still fit the weights). Accepted changes are written to ``config.yaml`` and every
  resume is appended to ``resumes.json`` (shown in the report).
- **A finished run** (its checkpoint at ``trainer.max_steps``, or out of ``trainer.max_minutes``) is not run
  again and nothing of it is written; raising ``trainer.max_steps`` (or ``max_minutes``) continues it, and the
  previous ``results.json`` is then kept as ``results-stepN.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from slotlab.atomic import write_json
from slotlab.config import (
    _load_yaml,
    apply_overrides,
    check_values,
    defaults_for,
    parse_override,
    task_schema,
    validate,
)
from slotlab.config_limits import check_structure
from slotlab.inference.checkpoint_io import (
    CheckpointError,
    UnsafeCheckpointError,
    checked_checkpoint,
    safe_torch_load,
)
from slotlab.runs import RunDirError, dump_config
from slotlab.tasks import task_name
from slotlab.train.callbacks import KEPT_PREFIX
from slotlab.validate import leaves


def safe_on_resume(task: str) -> frozenset[str]:
    """Keys an override on --resume may change (``resume=True`` in the task's schema): the length of the run and
    how it is executed (hardware, logging, figures), never the data, model, optimiser or seeds. ``data.workers`` /
    ``data.cache_dir`` only say how and where the (identical) data are prepared; ``data.eval_batch_size`` only how
    held-out images are batched."""
    return task_schema(task).safe_on_resume()


HISTORY = "resumes.json"


@dataclass
class ResumePlan:
    """What a resume will do; ``finished`` is a message when there is nothing to do."""

    run_dir: Path
    cfg: dict[str, Any]
    checkpoint: Path | None  # None: no checkpoint yet, the run starts from step 0
    step: int
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (checkpoint's value, new value)
    notes: list[str] = field(default_factory=list)
    finished: str | None = None


def clean_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete ``*.tmp`` files an interrupted write left in the run folder and its checkpoints/ (they are never
    complete: every file is written to ``<name>.tmp`` and renamed). Returns the deleted paths."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        for tmp in sorted(folder.glob("*.tmp")) if folder.is_dir() else []:
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    return removed


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint loaded as resuming loads it (weights only); RunDirError says why it cannot be used."""
    try:
        ckpt = safe_torch_load(path)  # weights only: a pickle that would run code is refused, not run
    except UnsafeCheckpointError as e:
        raise RunDirError(str(e)) from None
    except CheckpointError as e:  # torch raises many kinds for damaged files
        cause = e.__cause__ or e
        first = str(cause).strip().splitlines()[0].split(". ")[0][:160] if str(cause).strip() else ""
        raise RunDirError(f"{path} is damaged or unreadable ({type(cause).__name__}: {first})") from e
    return checked_checkpoint(ckpt, path, ("state_dict", "global_step"), RunDirError)


def best_step(path: Path) -> int:
    """The step in a checkpoint's file name (``best-step0006000-...``); -1 without one."""
    m = re.search(r"step(\d+)", path.name)
    return int(m.group(1)) if m else -1


def best_checkpoints(folder: Path) -> list[Path]:
    """The ``best-*.ckpt`` files of a checkpoint folder, newest step first (none: an empty list)."""
    return sorted(folder.glob("best-*.ckpt"), key=best_step, reverse=True) if folder.is_dir() else []


def newest_valid_checkpoint(run_dir: Path) -> tuple[Path | None, dict[str, Any] | None, list[str]]:
    """(path, loaded checkpoint, notes) of the checkpoint to resume from: last.ckpt, else the readable best-*.ckpt
    or kept-*.ckpt of the highest step; (None, None, []) when the run has no checkpoint at all."""
    folder = run_dir / "checkpoints"
    last = folder / "last.ckpt"
    kept = sorted(folder.glob(f"{KEPT_PREFIX}*.ckpt")) if folder.is_dir() else []
    bests = sorted([*best_checkpoints(folder), *kept], key=best_step, reverse=True)
    problems = []
    for path in [last, *bests] if last.exists() else bests:
        try:
            ckpt = read_checkpoint(path)
        except RunDirError as e:
            if "checkpoint format" in str(e):
                raise
            problems.append(str(e))
            continue
        notes = []
        if path != last:
            why = "; ".join(problems) if problems else f"{last} does not exist"
            notes.append(
                f"{why}: resuming from {path.name} (step {ckpt['global_step']}), the newest readable checkpoint"
            )
        return path, ckpt, notes
    if problems:
        raise RunDirError(f"no readable checkpoint in {folder}: " + "; ".join(problems))
    return None, None, []


def _fmt(v: Any) -> str:
    return "null" if v is None else json.dumps(v) if isinstance(v, (list, bool)) else str(v)


def timer_seconds(ckpt: dict[str, Any]) -> float | None:
    """Training seconds ``trainer.max_minutes`` is measured against when ``ckpt`` was written: slotlab's
    ``StepTimer`` (validation excluded); for checkpoints written before 2026-12-05 that lack it, the seconds of
    Lightning's ``Timer``, which stopped those runs."""
    callbacks = ckpt.get("callbacks") or {}
    for key, state in callbacks.items():
        if key.startswith("StepTimer") and isinstance(state, dict) and "train_seconds" in state:
            return float(state["train_seconds"])
    for key, state in callbacks.items():
        if key.startswith("Timer") and isinstance(state, dict):
            return float((state.get("time_elapsed") or {}).get("train", 0.0))
    return None


def safe_summary(cfg: dict[str, Any]) -> str:
    """The keys :func:`safe_on_resume` allows, with ``trainer.*`` for the trainer section when all its keys are."""
    safe = safe_on_resume(cfg["task"])
    keys = sorted(k for k in leaves(cfg) if k in safe)
    trainer = [k for k in leaves(cfg) if k.startswith("trainer.")]
    if trainer and all(k in safe for k in trainer):
        keys = ["trainer.*"] + [k for k in keys if not k.startswith("trainer.")]
    return ", ".join(keys)


def imported_step(run_dir: Path) -> int | None:
    """The step of the weights ``slotlab import-official`` put into ``run_dir`` (None for a trained run)."""
    try:
        info = json.loads((run_dir / "imported.json").read_text())
    except (OSError, ValueError):
        return None
    step = info.get("global_step") if isinstance(info, dict) else None
    return step if isinstance(step, int) else None


def plan_resume(run_dir: str | Path, overrides: list[str], cleanup: bool = True) -> ResumePlan:
    """Check a resume and say what it will do (see the module docstring). ``cleanup``: delete stale ``*.tmp``
    files (only the first process of a job does). Raises RunDirError / ConfigError with what to do."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(
            f"{run_dir} {'is not a folder' if run_dir.exists() else 'does not exist'}; --resume takes a run folder"
        )
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise RunDirError(f"{cfg_path} not found; is {run_dir} a slotlab run folder?")
    for text in overrides:
        keys, _ = parse_override(text)
        if keys[0] == "run":
            raise RunDirError(
                f"override {text!r}: run.root / run.name cannot change on --resume: the run folder is {run_dir}"
            )
    notes = []
    if cleanup:
        notes += [f"removed {p} (left by an interrupted write)" for p in clean_stale_temporaries(run_dir)]
    path, ckpt, ckpt_notes = newest_valid_checkpoint(run_dir)
    notes += ckpt_notes
    yaml_raw = _load_yaml(cfg_path)
    task = task_name(yaml_raw)
    from_yaml = validate(yaml_raw, defaults_for(task))
    saved = from_yaml
    if ckpt is not None:
        hp_cfg = (ckpt.get("hyper_parameters") or {}).get("config")
        if isinstance(hp_cfg, dict):
            check_structure(hp_cfg, f"the config stored in {path}")  # before it is compared or formatted
            if task_name(hp_cfg) != task:
                raise RunDirError(
                    f"{cfg_path} says task {task!r} but {path} holds a {hp_cfg.get('task')!r} model; "
                    "config.yaml was changed after training started"
                )
            saved = validate(hp_cfg, defaults_for(task))
    cfg = validate(apply_overrides(from_yaml, overrides), defaults_for(task))
    cfg["run"] = dict(from_yaml["run"])
    old, new = leaves(saved), leaves(cfg)
    changes = {k: (old.get(k), v) for k, v in new.items() if not k.startswith("run.") and old.get(k) != v}
    step = int(ckpt["global_step"]) if ckpt is not None else 0
    if ckpt is not None:
        if imported_step(run_dir) == step:  # weights imported (slotlab import-official), not trained here yet
            refused = sorted(k for k in changes if k.startswith("model.") or k == "task")
        else:
            refused = sorted(k for k in changes if k not in safe_on_resume(task))
        if refused:
            edited = [k for k in refused if leaves(from_yaml).get(k) != old.get(k)]
            listing = ", ".join(f"{k} ({_fmt(changes[k][0])} -> {_fmt(changes[k][1])})" for k in refused)
            where = f" ({', '.join(edited)} from an edited {cfg_path.name})" if edited else ""
            sets = " ".join(f"{k}={_fmt(changes[k][1])}" for k in refused)
            raise RunDirError(
                f"cannot change {listing} on --resume{where}: the checkpoint at step {step} was trained with the "
                f"first value, and these keys define what the run computes. Only {safe_summary(cfg)} may change. "
                f"To train with the new values, start a new run: slotlab train --config {cfg_path} "
                f"run.name=NEW_NAME {sets}"
            )
    check_values(cfg)
    plan = ResumePlan(run_dir, cfg, path, step, changes, notes)
    if ckpt is None:
        plan.notes.append(f"{run_dir} has no checkpoint yet: training it from step 0 with its config.yaml")
        return plan
    t = cfg["trainer"]
    if step >= t["max_steps"]:
        plan.finished = (
            f"{run_dir} is finished: its checkpoint is at step {step} and trainer.max_steps is {t['max_steps']}. "
            f"Nothing was run and nothing was written. To train it longer, raise trainer.max_steps, e.g.: "
            f"slotlab train --resume {run_dir} trainer.max_steps={max(2 * step, step + 1)}"
        )
    else:
        elapsed = timer_seconds(ckpt)
        if t["max_minutes"] and elapsed is not None and elapsed >= 60 * t["max_minutes"]:
            plan.finished = (
                f"{run_dir} is finished: it trained for its trainer.max_minutes ({t['max_minutes']:g} min; step "
                f"{step} of {t['max_steps']}). Nothing was run and nothing was written. To train it longer, raise "
                f"the time budget (it counts all sessions): slotlab train --resume {run_dir} "
                f"trainer.max_minutes={2 * t['max_minutes']:g} (or trainer.max_minutes=null)"
            )
    return plan


def record_resume(plan: ResumePlan) -> None:
    """Write accepted changes to config.yaml (atomically) and append this resume to resumes.json."""
    if plan.changes:
        dump_config(plan.cfg, plan.run_dir / "config.yaml")
    history_path = plan.run_dir / HISTORY
    try:
        history = json.loads(history_path.read_text()) if history_path.exists() else []
    except (OSError, ValueError):
        history = []
    if not isinstance(history, list):
        history = []
    history.append(
        {
            "time": datetime.now().isoformat(timespec="seconds"),
            "from_step": plan.step,
            "checkpoint": plan.checkpoint.name if plan.checkpoint else None,
            "changes": {k: [a, b] for k, (a, b) in plan.changes.items()},
            "notes": plan.notes,
        }
    )
    write_json(history_path, history)


def last_checkpoint(run_dir: Path) -> Path:
    """``run_dir``'s last.ckpt, checked readable (RunDirError says why not)."""
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        raise RunDirError(f"{ckpt} not found: {run_dir} has no checkpoint to resume from")
    read_checkpoint(ckpt)  # readable, a slotlab checkpoint, of this format (RunDirError says why not)
    return ckpt


def checkpoint_to_resume(run_dir: Path, resume: bool | str | Path) -> str | None:
    """The checkpoint ``train`` continues from: ``resume`` itself when it is a path, last.ckpt when True."""
    if isinstance(resume, (str, Path)):
        return str(resume)
    return str(last_checkpoint(run_dir)) if resume else None
