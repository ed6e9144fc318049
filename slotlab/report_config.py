"""What ``slotlab report`` says about a run's config: the config the model was trained with (stored in its
checkpoint, not ``config.yaml``, which anyone can edit after the fact), where ``config.yaml`` differs from it, and
a test-time sweep command that this run's model can run (its task's presenter says which flags: a model with
learned per-slot initial slots or queries has a fixed K; the Slot MLP baseline has no iterations)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_DIFFERENCES = 20  # listed in the report; the rest are counted


@dataclass
class TrainedConfig:
    """The config stored in a run's checkpoint (None when none could be read), which checkpoint, its step, and
    why it could not be read."""

    config: dict[str, Any] | None
    checkpoint: Path | None = None
    step: int | None = None
    problem: str | None = None


def run_checkpoint(run_dir: Path) -> Path | None:
    """``checkpoints/last.ckpt``, else the newest other checkpoint of the run, else None."""
    folder = Path(run_dir) / "checkpoints"
    last = folder / "last.ckpt"
    if last.is_file():
        return last
    others = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return others[-1] if others else None


def trained_config(run_dir: Path) -> TrainedConfig:
    """The config stored in the run's checkpoint (read without running code from it)."""
    from slotlab.inference.checkpoint_io import CheckpointError, load_checkpoint

    path = run_checkpoint(run_dir)
    if path is None:
        return TrainedConfig(None, problem="no checkpoint in checkpoints/")
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:  # unreadable or unsafe: the report says so and shows config.yaml
        return TrainedConfig(None, path, problem=str(e))
    cfg = (ckpt.get("hyper_parameters") or {}).get("config")
    if not isinstance(cfg, dict):
        return TrainedConfig(None, path, problem="the checkpoint holds no config")
    step = ckpt.get("global_step")
    return TrainedConfig(cfg, path, step if isinstance(step, int) else None)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def config_differences(trained: dict[str, Any], file: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in the checkpoint's config, value in config.yaml) of every key whose values differ or
    that only one of them has (the missing side is the string "(absent)")."""
    a, b = _flat(trained), _flat(file)
    out = []
    for key in [*a, *(k for k in b if k not in a)]:
        va, vb = a.get(key, "(absent)"), b.get(key, "(absent)")
        if not _same(va, vb):
            out.append((key, va, vb))
    return out


def sweep_hint(run_dir: Path, cfg: dict[str, Any]) -> str | None:
    """A ``slotlab eval`` test-time sweep this run's model can run, or None (no model section in the config, a task
    that is not registered, or nothing to sweep)."""
    from slotlab.tasks import TASKS, task_name

    model = cfg.get("model") if isinstance(cfg, dict) else None
    task = TASKS.get(task_name(cfg))
    if not isinstance(model, dict) or task is None:
        return None
    args = task.presenter.sweep_args(cfg)
    return f"slotlab eval {shlex.quote(str(run_dir))} {' '.join(args)}" if args else None
