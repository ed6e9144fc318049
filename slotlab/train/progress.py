"""Progress output of ``slotlab train`` (``trainer.progress_bar``): on a terminal, a progress bar that counts
optimizer steps ("steps 120/1000"; Lightning's own says ``Epoch 0/-2`` for a step-based run, whose max_epochs is
-1); when stdout is a file or a pipe (a log, ``| tee``, a batch job), plain lines instead of carriage returns: one
every ``trainer.log_every`` steps (loss, speed, time left) and one per validation (its held-out metrics). The
step printed is the number of optimizer steps done, as in metrics.csv, the figures and the checkpoint names."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE


def _value(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) and (v == 0 or 1e-3 <= abs(v) < 1e5) else f"{v:.3e}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StepProgressBar(RichProgressBar):
    """Lightning's Rich progress bar, counting optimizer steps out of ``trainer.max_steps`` (resumed runs start
    at their step), described as "steps" instead of ``Epoch 0/-2``."""

    @property
    def total_train_batches(self) -> int | float:
        steps = self.trainer.max_steps
        return steps if steps and steps > 0 else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        text = "steps"
        return f"{text:{len(self.validation_description)}}" if len(self.validation_description) > len(text) else text

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._update(self.train_progress_bar_id, trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._update(self.train_progress_bar_id, trainer.global_step)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class LineProgress(L.Callback):
    """One plain line every ``every`` optimizer steps and one per validation (rank 0), written to ``stream``."""

    def __init__(self, every: int, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = max(1, int(every))
        self.stream = stream
        self.clock = clock
        self._start: tuple[float, int] | None = None

    def _write(self, trainer: L.Trainer, text: str) -> None:
        if trainer.is_global_zero:
            stream = self.stream or sys.stdout
            stream.write(text + "\n")
            stream.flush()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (self.clock(), trainer.global_step)
        first = f"from step {trainer.global_step} " if trainer.global_step else ""
        every = "step" if self.every == 1 else f"{self.every} steps"
        self._write(trainer, f"training {first}to step {trainer.max_steps} (a line every {every})")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, trainer.max_steps
        if step % self.every and step != total:
            return
        parts = [f"step {step}/{total}" if total and total > 0 else f"step {step}"]
        metrics = trainer.callback_metrics
        for key in ("train/loss", "train/lr"):
            v = _value(metrics.get(key))
            if v is not None:
                parts.append(f"{key} {_fmt(v)}")
        if self._start is not None:
            seconds, first = self.clock() - self._start[0], self._start[1]
            if step > first and seconds > 0:
                rate = (step - first) / seconds
                parts.append(f"{rate:.3g} steps/s")
                if total and total > step:
                    parts.append(f"{_duration((total - step) / rate)} left")
        self._write(trainer, " | ".join(parts))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = {k: _value(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(values.items()) if v is not None)
        self._write(trainer, f"step {trainer.global_step} validation: {shown or 'no metrics'}")


def progress_callbacks(enabled: bool, every: int, stream: TextIO | None = None) -> list[L.Callback]:
    """The progress output of a run: none (``trainer.progress_bar: false``), the step-counting bar on a terminal,
    or :class:`LineProgress` when ``stream`` (default: stdout) is not a terminal."""
    if not enabled:
        return []
    if (stream or sys.stdout).isatty() and _RICH_AVAILABLE:
        return [StepProgressBar()]
    return [LineProgress(every, stream)]  # stream None: sys.stdout at the time of each line
