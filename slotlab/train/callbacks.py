"""Lightning callbacks and checkpoint I/O: atomic checkpoint writes, a time log, the last checkpoint, the checkpoints
kept every N steps, the EMA of the weights (the figures of every validation: :mod:`slotlab.train.figure_callbacks`)."""

from __future__ import annotations

import errno
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, EMAWeightAveraging, ModelCheckpoint

from slotlab.atomic import atomic_open
from slotlab.errors import UserError
from slotlab.runs import run_dir_of
from slotlab.torch_workarounds import torch_save_failed


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (most often: the disk is full); the previous one is intact."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def _disk_full(error: BaseException, free: int | None) -> bool:
    for e in (error, error.__cause__, error.__context__):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
    # torch.save hides the OSError of a failed write (a full disk, mostly) behind its own message (torch_workarounds)
    return torch_save_failed(error) or "No space left" in str(error) or (free is not None and free < 1 << 20)


def _kept_checkpoints(path: Path) -> str:
    """What a failed write of ``path`` left of the run's checkpoints, as found on disk (never assumed)."""
    if path.exists():
        return f"the previous checkpoint is intact ({path.name})"
    earlier = sorted(p.name for p in path.parent.glob("*.ckpt") if p.is_file())
    if not earlier:
        return "no earlier checkpoint exists"
    if len(earlier) == 1:
        return f"the earlier checkpoint {earlier[0]} is intact"
    return f"the earlier checkpoints {', '.join(earlier)} are intact"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to ``<path>.tmp`` then renames it over ``path``: a crash (or a full disk) while
    saving leaves the previous good checkpoint in place. A failed write raises CheckpointWriteError that says
    so (torch's own message for a full disk is ``unexpected pos``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_open(path) as f:  # the partial <path>.tmp is removed when this fails
                torch.save(checkpoint, f)
        except Exception as e:
            try:
                free: int | None = shutil.disk_usage(path.parent).free
            except OSError:
                free = None
            run = run_dir_of(path)
            kept = _kept_checkpoints(path)
            if _disk_full(e, free):
                raise CheckpointWriteError(
                    errno.ENOSPC,
                    f"No space left on device while writing the checkpoint {path} ({(free or 0) >> 20} MiB free on "
                    f"that file system); the partial file was removed and {kept}. Free some space, then continue "
                    f"with: slotlab train --resume {run}",
                ) from e
            raise CheckpointWriteError(
                getattr(e, "errno", None) or errno.EIO,
                f"could not write the checkpoint {path}: {type(e).__name__}: {e}; the partial file was removed and "
                f"{kept}",
            ) from e


class StepTimer(L.Callback):
    """Logs wall-clock training time (excluding validation) as ``time/train_minutes``. Its state in checkpoints
    also carries the wall time of the run up to the checkpoint, so a resumed run reports the time of all its
    sessions (``wall_seconds_before`` + this session), not only the last one's.

    ``max_minutes`` (``trainer.max_minutes``) stops training once this clock reaches it: minutes of training
    steps over all sessions, validation excluded, the minutes slotlab prints. (Lightning's ``Timer``, used until
    2026-12-05, also counted validation, so frequent validation cut the training short.)"""

    def __init__(self, max_minutes: float | None = None) -> None:
        self.max_seconds = None if max_minutes is None else 60.0 * float(max_minutes)
        self.train_seconds = 0.0
        self._t0: float | None = None
        self.step_seconds: list[float] = []  # the first steps of this process (for the compile-time estimate)
        self._created = time.perf_counter()  # this session's start (the trainer is built right before fit)
        self.wall_seconds_before = 0.0  # wall time of earlier sessions, up to the checkpoint resumed from
        self.resumed_from_step: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._t0 is not None:
            dt = time.perf_counter() - self._t0
            self.train_seconds += dt
            if len(self.step_seconds) < 21:
                self.step_seconds.append(dt)
        pl_module.log("time/train_minutes", self.train_seconds / 60.0)
        if self.max_seconds is not None and not trainer.should_stop:
            # Rank 0's clock decides, so that every process of a DDP run stops at the same step.
            out = trainer.strategy.broadcast(self.train_seconds >= self.max_seconds)
            trainer.should_stop = bool(out)

    def first_step_overhead(self) -> float | None:
        """Seconds the first step took beyond a typical step (torch.compile's compile time, when enabled)."""
        if len(self.step_seconds) < 3:
            return None
        rest = sorted(self.step_seconds[1:])
        return max(0.0, self.step_seconds[0] - rest[len(rest) // 2])

    def state_dict(self) -> dict[str, float]:
        wall = self.wall_seconds_before + time.perf_counter() - self._created
        return {"train_seconds": self.train_seconds, "wall_seconds": wall}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.train_seconds = state_dict.get("train_seconds", 0.0)
        self.wall_seconds_before = state_dict.get("wall_seconds", 0.0)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.wall_seconds_before or self.train_seconds:
            self.resumed_from_step = trainer.global_step


KEPT_PREFIX = "kept-"  # kept-step0001000.ckpt: trainer.keep_every's checkpoints


def kept_step_checkpoints(folder: Path, every: int | None) -> list[ModelCheckpoint]:
    """``trainer.keep_every``: Lightning's ModelCheckpoint keeping the checkpoint of every ``every``-th step as
    ``kept-stepNNNNNNN.ckpt`` (all of them, full state: each can be evaluated, or resumed from when last.ckpt is
    damaged); none when ``every`` is None."""
    if every is None:
        return []
    return [
        ModelCheckpoint(
            dirpath=folder,
            filename=KEPT_PREFIX + "step{step:07d}",
            auto_insert_metric_name=False,
            every_n_train_steps=every,
            save_top_k=-1,
            save_last=False,
        )
    ]


class LastCheckpoint(Checkpoint):
    """Writes ``checkpoints/last.ckpt`` after every validation and when training ends (atomically, through
    the trainer's checkpoint I/O). Lightning's own ``save_last`` only writes when a top-k checkpoint is saved.

    A ``Checkpoint`` subclass so that Lightning runs it after the ``ModelCheckpoint`` listed before it (it moves
    checkpoint callbacks to the end of the list, in their order): the file then holds the best-checkpoint state of
    its own validation, and a resumed run tracks, and replaces, that validation's best-*.ckpt."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._saved_step = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.global_step == self._saved_step:
            return
        trainer.save_checkpoint(str(self.path), weights_only=False)  # full state, for --resume
        self._saved_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class WarmupEMA(EMAWeightAveraging):
    """Lightning's EMA of the weights (``optim.ema_decay``), averaging from ``start`` (the end of the warmup) on.
    Before ``start`` the average follows the trained weights exactly, so a validation, checkpoint or final
    evaluation before the averaging begins sees the trained weights, not the initial ones."""

    def __init__(self, decay: float, start: int) -> None:
        super().__init__(decay=decay, update_starting_at_step=start)
        self.start = start

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step - 1 < self.start and self._average_model is not None:
            self._average_model.n_averaged.zero_()  # the next update copies the trained weights
            self._average_model.update_parameters(pl_module)
            self._average_model.n_averaged.zero_()  # the first averaging step after ``start`` copies again
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
