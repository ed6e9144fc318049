"""The one training entry point of every task (``slotlab train``): the Lightning Trainer of a run folder, the
task's DataModule and :class:`~slotlab.train.module.SlotModule`, and the final held-out evaluation written to
``results.json``. Resuming (``slotlab train --resume RUN_DIR``) continues from ``checkpoints/last.ckpt`` into new
log versions; nothing written before is overwritten (which checkpoint, config and overrides:
:mod:`slotlab.train.resume`). Paper: the training setups of Sections 4.1 / 4.2.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar

from slotlab.data.errors import DatasetFileError
from slotlab.run_lock import run_lock
from slotlab.runs import launched_rank, write_results
from slotlab.tasks import get_task
from slotlab.tasks.base import EvalOptions, Task
from slotlab.torch_workarounds import remove_broken_kernels
from slotlab.train.callbacks import AtomicCheckpointIO, LastCheckpoint, StepTimer, WarmupEMA, kept_step_checkpoints
from slotlab.train.failed_seed import FailedSeedError, FailedSeedMonitor
from slotlab.train.figure_callbacks import ValidationFigures
from slotlab.train.init_from import load_initial_weights
from slotlab.train.loggers import bind, run_loggers
from slotlab.train.module import SlotModule
from slotlab.train.progress import progress_callbacks
from slotlab.train.resume import best_checkpoints, best_step, checkpoint_to_resume
from slotlab.train.runtime import (
    compile_support,
    machine_description,
    resolve_accelerator,
    resolve_channels_last,
    resolve_precision,
    tune_malloc,
)

log = logging.getLogger(__name__)


def build_trainer(
    cfg: dict[str, Any],
    run_dir: Path,
    monitor: str | None = None,
    best_name: str | None = None,
    extra_callbacks: Sequence[L.Callback] = (),
    metric_names: Sequence[str] = (),
) -> tuple[L.Trainer, dict[str, Any]]:
    """The Lightning Trainer of a run: best (by ``monitor``, default the config's task's) and last checkpoints
    written atomically, CSV and TensorBoard logs at the number of optimizer steps done
    (:mod:`slotlab.train.loggers`; ``metric_names``: the held-out metrics of TensorBoard's hparams tab, default the
    task's), training-time log, progress output (:mod:`slotlab.train.progress`), plus the task's own callbacks. The
    learning rate is logged as ``train/lr``."""
    task = get_task(cfg["task"])
    monitor = monitor or task.monitor
    best_name = best_name or task.best_name
    metric_names = metric_names or task.metrics
    t = cfg["trainer"]
    accelerator = resolve_accelerator(t["accelerator"])
    precision = resolve_precision(t["precision"], accelerator)
    callbacks = [
        ModelCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename=best_name,
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=task.monitor_mode,
            save_top_k=1,
            save_last=False,
        ),
        *kept_step_checkpoints(run_dir / "checkpoints", t["keep_every"]),
        LastCheckpoint(run_dir / "checkpoints" / "last.ckpt"),
        StepTimer(t["max_minutes"]),
        *progress_callbacks(t["progress_bar"], t["log_every"]),
        *extra_callbacks,
    ]
    if cfg["optim"].get("ema_decay"):
        # Lightning's EMA: validation, checkpoints ("state_dict" = the average; the trained weights are kept for
        # resuming) and the end of training use the averaged weights. First after the warmup.
        ema = WarmupEMA(cfg["optim"]["ema_decay"], cfg["optim"]["warmup_steps"])
        callbacks.insert(0, ema)
    loggers = run_loggers(str(run_dir), metric_names or [monitor])
    trainer = L.Trainer(
        default_root_dir=str(run_dir),
        accelerator=accelerator,
        devices=t["devices"],
        num_nodes=t["num_nodes"],
        strategy=t["strategy"],
        precision=precision,
        max_steps=t["max_steps"],
        val_check_interval=t["val_every"],
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=t["log_every"],
        gradient_clip_val=cfg["optim"]["grad_clip"],
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False,
        callbacks=callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        deterministic=False,
    )
    bind(loggers, trainer)
    return trainer, {"accelerator": accelerator, "precision": precision}


def task_callbacks(task: Task, cfg: dict[str, Any], run_dir: Path) -> list[L.Callback]:
    """The training callbacks a task asks for through its attributes: the failed-seed monitor of its
    ``failed_seed_metric`` (if it has one) and, with ``trainer.figure_every_val``, its validation figures."""
    t = cfg["trainer"]
    callbacks: list[L.Callback] = []
    if task.failed_seed_metric is not None:
        after = t["failed_seed_after"] if t["failed_seed_after"] is not None else 2 * cfg["optim"]["warmup_steps"]
        callbacks.append(
            FailedSeedMonitor(
                run_dir, t["failed_seed"], t["failed_seed_threshold"], after, metric=task.failed_seed_metric
            )
        )
    if t["figure_every_val"]:
        callbacks.append(ValidationFigures(task.presenter, run_dir / "figures"))
    return callbacks


def prepare_runtime(cfg: dict[str, Any]) -> None:
    """Threads, allocator tuning and seeds, as the config says (before building data and model)."""
    t = cfg["trainer"]
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    if t["tune_malloc"]:
        tune_malloc()
    L.seed_everything(cfg["seed"], workers=True, verbose=False)


def compile_plan(trainer_cfg: dict[str, Any]) -> tuple[bool, str | None]:
    """(compile this run?, why ``auto`` runs eager where it would otherwise compile, or None).

    ``trainer.compile``: true, false, or "auto" (the default) = true for runs of at least 1000 steps (where the
    ~1 minute of compilation pays off) on a machine where torch.compile can run (:func:`compile_support`)."""
    value = trainer_cfg["compile"]
    if value is True:
        return True, None
    if value != "auto" or trainer_cfg["max_steps"] < 1000:
        return False, None
    reason = compile_support(resolve_accelerator(trainer_cfg["accelerator"]))
    return reason is None, reason


def compile_enabled(trainer_cfg: dict[str, Any]) -> bool:
    """Whether ``trainer.compile`` compiles this run (:func:`compile_plan`)."""
    return compile_plan(trainer_cfg)[0]


def train(cfg: dict[str, Any], run_dir: Path, resume: bool | str | Path = False) -> dict[str, Any]:
    """Train ``cfg``'s task as configured into ``run_dir``; returns the run facts and the final held-out
    evaluation (also written to ``results.json``). ``resume``: True continues from last.ckpt, a path from that
    checkpoint (``slotlab.train.resume.plan_resume`` picks it). The process that writes the run folder (the first
    of a multi-process job) holds its lock throughout (:mod:`slotlab.run_lock`; RunInUseError when another process
    trains into it)."""
    with run_lock(run_dir) if launched_rank() == 0 else contextlib.nullcontext():
        return _train(cfg, run_dir, resume)


def _train(cfg: dict[str, Any], run_dir: Path, resume: bool | str | Path) -> dict[str, Any]:
    task = get_task(cfg["task"])
    t = cfg["trainer"]
    prepare_runtime(cfg)
    data = task.datamodule(cfg)
    channels_last = resolve_channels_last(t["channels_last"])
    module = SlotModule(cfg, task.image_size(cfg), channels_last)
    ckpt_path = checkpoint_to_resume(run_dir, resume)
    if ckpt_path is None and cfg["model"].get("init_from"):
        own = load_initial_weights(module.model, cfg["model"]["init_from"])
        log.info("initial weights from %s; %d tensor(s) keep their own: %s", cfg["model"]["init_from"], len(own), own)
    compiled = compile_enabled(t)
    removed_kernels: list[Path] = []
    if compiled:
        removed_kernels = remove_broken_kernels()  # left cut short by a run killed while it compiled
        if removed_kernels:
            log.warning(
                "removed %d incomplete compiled kernel(s) from torch.compile's cache (left by an interrupted "
                "compile; they are rebuilt), e.g. %s",
                len(removed_kernels),
                removed_kernels[0],
            )
        module.model.compile()
    trainer, facts = build_trainer(cfg, run_dir, extra_callbacks=task_callbacks(task, cfg, run_dir))
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    except FailedSeedError as e:
        return {"run_dir": str(run_dir), "failed_seed": True, "message": str(e), "global_step": trainer.global_step}
    wall = time.perf_counter() - t0
    timer = next(c for c in trainer.callbacks if isinstance(c, StepTimer))
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "task": task.name,
        "model_kind": cfg["model"].get("kind"),
        "global_step": trainer.global_step,
        "wall_seconds": timer.wall_seconds_before + wall,  # all sessions of the run (see StepTimer)
        "session_wall_seconds": wall,
        "resumed_from_step": timer.resumed_from_step,
        "train_seconds": timer.train_seconds,
        "precision": facts["precision"],
        "accelerator": facts["accelerator"],
        "channels_last": channels_last,
        "compile": compiled,
        # With trainer.compile: the first step's extra time over a typical step (the compilation).
        "compile_seconds": timer.first_step_overhead() if compiled else None,
        "compile_cache_removed": len(removed_kernels),
        "threads": torch.get_num_threads(),
        "world_size": trainer.world_size,
        "machine": machine_description(facts["accelerator"]),
        "replica_max_diff": module.replica_max_diff,
    }
    if trainer.is_global_zero:
        data.setup("validate")
        if module.device.type == "meta":
            module.to("cpu")
        result.update(task.evaluate(module.model, data.eval, cfg, options=EvalOptions(channels_last=channels_last)))
        result.update(task.result_facts(cfg))
        best = best_checkpoint(trainer, run_dir)
        if best is not None:
            try:
                result["test"] = test_of_checkpoint(best)
            except DatasetFileError as e:  # data without a test split: MOVi as released, a short DeepMind file
                log.warning("no test-split score of the best checkpoint: the data holds no test split (%s)", e)
        write_results(run_dir, result)
    return result


def best_checkpoint(trainer: L.Trainer, run_dir: Path) -> Path | None:
    """The checkpoint the eval split picked (``best-*.ckpt``, Lightning's ModelCheckpoint); None before the first
    validation."""
    callback = trainer.checkpoint_callback
    named = callback.best_model_path if isinstance(callback, ModelCheckpoint) else ""
    path = Path(named) if named else None
    if path is not None and path.is_file():
        return path
    bests = best_checkpoints(run_dir / "checkpoints")
    return bests[0] if bests else None


def test_of_checkpoint(path: Path) -> dict[str, Any]:
    """The task's held-out metrics of checkpoint ``path`` on the ``test`` split (the images that chose nothing),
    computed as ``slotlab eval CKPT --split test`` computes them; with the checkpoint's file name and step."""
    from slotlab.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(path, split="test")
    return {**result, "checkpoint": path.name, "step": best_step(path)}
