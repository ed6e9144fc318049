"""Run folders and the training entry point used by ``slotlab train`` (object discovery, paper 4.1).

A run folder holds ``config.yaml`` (the full, validated config), ``checkpoints/`` (``last.ckpt`` and the
best by held-out FG-ARI), ``logs/`` (CSV) and ``tb/`` (TensorBoard), ``figures/`` and ``results.json``.
Resuming (``slotlab train --resume RUN_DIR``) continues from ``checkpoints/last.ckpt`` into new log versions;
nothing written before is overwritten (which checkpoint, config and overrides: :mod:`slotlab.train.resume`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from slotlab.config import ConfigError, dump_config
from slotlab.data.datamodule import data_from_config
from slotlab.train.callbacks import AtomicCheckpointIO, FigureCallback, LastCheckpoint, StepTimer
from slotlab.train.failed_seed import FailedSeedError, FailedSeedMonitor
from slotlab.train.object_discovery import ObjectDiscoveryTask, evaluate_fg_ari, summarize
from slotlab.train.runtime import resolve_accelerator, resolve_channels_last, resolve_precision, tune_malloc


class RunDirError(RuntimeError):
    """A run folder that cannot be created, written or resumed."""


RUN_DIR_ENV = "SLOTLAB_RUN_DIR"


def launched_rank() -> int:
    """The global rank of this process when a launcher (torchrun, SLURM, Lightning's DDP) started it, else 0."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def new_run_dir(cfg: dict[str, Any], config_name: str, secondary: bool = False) -> Path:
    """Create the run folder. ``secondary``: a non-zero rank of a multi-process job, which uses the folder
    that rank 0 creates (from the environment when Lightning launched it, else ``run.name``)."""
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
    if run_dir.exists() and any(run_dir.iterdir()):
        started = any((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").is_dir() else False
        what = "" if started else " (it has no checkpoint: a start that failed or stopped early; resuming restarts it)"
        raise RunDirError(
            f"run folder {run_dir} already exists and is not empty{what}; choose another run.name, or resume it "
            f"with: slotlab train --resume {run_dir}"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"cannot write the run folder {run_dir}: {e}. Choose a writable run.root.") from e
    dump_config(cfg, run_dir / "config.yaml")
    return run_dir


def last_checkpoint(run_dir: Path) -> Path:
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        raise RunDirError(f"{ckpt} not found: {run_dir} has no checkpoint to resume from")
    from slotlab.train.resume import read_checkpoint  # lazy: resume.py imports this module

    read_checkpoint(ckpt)  # readable, a slotlab checkpoint, of this format (RunDirError says why not)
    return ckpt


def checkpoint_to_resume(run_dir: Path, resume: bool | str | Path) -> str | None:
    """The checkpoint ``train`` continues from: ``resume`` itself when it is a path, last.ckpt when True."""
    if isinstance(resume, (str, Path)):
        return str(resume)
    return str(last_checkpoint(run_dir)) if resume else None


def build_trainer(
    cfg: dict[str, Any],
    run_dir: Path,
    monitor: str = "val/fg_ari",
    best_name: str = "best-step{step:07d}-fgari{val/fg_ari:.4f}",
    extra_callbacks: Sequence[L.Callback] = (),
) -> tuple[L.Trainer, dict[str, Any]]:
    """The Lightning Trainer of a run: best (by ``monitor``) and last checkpoints written atomically, CSV and
    TensorBoard logs, lr monitor, training-time log, plus the task's own callbacks."""
    t = cfg["trainer"]
    accelerator = resolve_accelerator(t["accelerator"])
    precision = resolve_precision(t["precision"], accelerator)
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename=best_name,
            auto_insert_metric_name=False,
            monitor=monitor,
            mode="max",
            save_top_k=1,
            save_last=False,
        ),
        LastCheckpoint(run_dir / "checkpoints" / "last.ckpt"),
        LearningRateMonitor(logging_interval="step"),
        StepTimer(),
        *extra_callbacks,
    ]
    loggers = [
        CSVLogger(save_dir=str(run_dir), name="logs"),
        TensorBoardLogger(save_dir=str(run_dir), name="tb", default_hp_metric=False),
    ]
    trainer = L.Trainer(
        default_root_dir=str(run_dir),
        accelerator=accelerator,
        devices=t["devices"],
        num_nodes=t["num_nodes"],
        strategy=t["strategy"],
        precision=precision,
        max_steps=t["max_steps"],
        max_time={"minutes": t["max_minutes"]} if t["max_minutes"] else None,
        val_check_interval=t["val_every"],
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=t["log_every"],
        gradient_clip_val=cfg["optim"]["grad_clip"],
        enable_progress_bar=t["progress_bar"],
        enable_model_summary=False,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        deterministic=False,
    )
    return trainer, {"accelerator": accelerator, "precision": precision}


def object_discovery_callbacks(cfg: dict[str, Any], run_dir: Path) -> list[L.Callback]:
    t = cfg["trainer"]
    after = t["failed_seed_after"] if t["failed_seed_after"] is not None else 2 * cfg["optim"]["warmup_steps"]
    callbacks: list[L.Callback] = [FailedSeedMonitor(run_dir, t["failed_seed"], t["failed_seed_threshold"], after)]
    if t["figure_every_val"]:
        callbacks.append(FigureCallback(run_dir / "figures"))
    return callbacks


def prepare_runtime(cfg: dict[str, Any]) -> None:
    """Threads, allocator tuning and seeds, as the config says (before building data and model)."""
    t = cfg["trainer"]
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    if t["tune_malloc"]:
        tune_malloc()
    L.seed_everything(cfg["seed"], workers=True, verbose=False)


def train(cfg: dict[str, Any], run_dir: Path, resume: bool | str | Path = False) -> dict[str, Any]:
    """Train as configured; returns the final held-out evaluation and run facts. ``resume``: True continues
    from last.ckpt, a path from that checkpoint (``slotlab.train.resume.plan_resume`` picks it)."""
    if cfg["task"] == "set_prediction":
        from slotlab.train.set_prediction import train_set_prediction

        return train_set_prediction(cfg, run_dir, resume)
    if cfg["task"] != "object_discovery":
        raise ConfigError(f"unknown task {cfg['task']!r}")
    t = cfg["trainer"]
    prepare_runtime(cfg)
    d = cfg["data"]
    data = data_from_config(d)
    channels_last = resolve_channels_last(t["channels_last"])
    task = ObjectDiscoveryTask(cfg, data.info.image_size, channels_last)
    if t["compile"]:
        task.model.compile()
    trainer, facts = build_trainer(cfg, run_dir, extra_callbacks=object_discovery_callbacks(cfg, run_dir))
    ckpt_path = checkpoint_to_resume(run_dir, resume)
    t0 = time.perf_counter()
    try:
        trainer.fit(task, datamodule=data, ckpt_path=ckpt_path)
    except FailedSeedError as e:
        return {"run_dir": str(run_dir), "failed_seed": True, "message": str(e), "global_step": trainer.global_step}
    wall = time.perf_counter() - t0
    timer = next(c for c in trainer.callbacks if isinstance(c, StepTimer))
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "global_step": trainer.global_step,
        "wall_seconds": timer.wall_seconds_before + wall,  # all sessions of the run (see StepTimer)
        "session_wall_seconds": wall,
        "resumed_from_step": timer.resumed_from_step,
        "train_seconds": timer.train_seconds,
        "precision": facts["precision"],
        "accelerator": facts["accelerator"],
        "channels_last": channels_last,
        "compile": t["compile"],
        # With trainer.compile: the first step's extra time over a typical step (the compilation).
        "compile_seconds": timer.first_step_overhead() if t["compile"] else None,
        "threads": torch.get_num_threads(),
        "world_size": trainer.world_size,
        "replica_max_diff": getattr(task, "replica_max_diff", None),
    }
    if trainer.is_global_zero:
        data.setup("validate")
        device = task.device if task.device.type != "meta" else torch.device("cpu")
        scores = evaluate_fg_ari(
            task.model,
            data.eval["image"].to(device),
            data.eval["mask"].to(device),
            batch_size=d["eval_batch_size"],
            channels_last=channels_last,
            undefined=cfg["eval"]["ari_undefined"],
        )
        result.update(summarize(scores))
        result["dataset"] = d["name"]
        write_results(run_dir, result)
    return result


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
