"""The run's logs (``logs/version_N/metrics.csv`` and TensorBoard's ``tb/version_N/``) with one step convention:
every row is logged at the number of optimizer steps done (Lightning's ``global_step`` after the step), the number
the figures (``figures/step_0001000.png``) and the checkpoints (``best-step0001000-...``, ``last.ckpt``'s
``global_step``) carry. Lightning's loggers otherwise write the index of the batch (one less: a validation after
1000 steps was logged at step 999). TensorBoard also gets the run's config as hyper-parameters (its HPARAMS tab,
next to the held-out metrics) and, from :mod:`slotlab.train.figure_callbacks`, the figures of every validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


class _StepsDone:
    """Logs every row at ``trainer.global_step`` once :meth:`bind` gave the trainer."""

    _trainer: L.Trainer | None = None

    def bind(self, trainer: L.Trainer) -> None:
        self._trainer = trainer

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self._trainer is not None:
            step = self._trainer.global_step
        super().log_metrics(metrics, step)  # type: ignore[misc]


class StepCSVLogger(_StepsDone, CSVLogger):
    """Lightning's CSVLogger, rows at the number of optimizer steps done."""


class StepTensorBoardLogger(_StepsDone, TensorBoardLogger):
    """Lightning's TensorBoardLogger, scalars at the number of optimizer steps done; the hyper-parameters (the
    run's config, flattened: ``config/optim/lr`` ...) are written for TensorBoard's HPARAMS tab, with
    ``metric_names`` (the held-out metrics) as its metric columns."""

    def __init__(self, *args: Any, metric_names: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metric_names = list(metric_names)

    @rank_zero_only
    def log_hyperparams(self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None) -> None:
        super().log_hyperparams(params, metrics, step)  # hparams.yaml (and Lightning's hp_metric when given)
        if metrics is not None or not self.metric_names:
            return
        from torch.utils.tensorboard.summary import hparams

        flat = self._sanitize_params(_flatten_dict(_convert_params(params)))
        # The metric columns name scalars this run logs; no value is written here (no fake point at step 0).
        experiment, start, end = hparams(flat, dict.fromkeys(self.metric_names, 0.0))
        writer = self.experiment._get_file_writer()
        for summary in (experiment, start, end):
            writer.add_summary(summary)


def run_loggers(save_dir: str, metric_names: Sequence[str]) -> list[StepCSVLogger | StepTensorBoardLogger]:
    """The CSV (``logs/``) and TensorBoard (``tb/``) loggers of a run folder; :func:`bind` them to the trainer."""
    return [
        StepCSVLogger(save_dir=save_dir, name="logs"),
        StepTensorBoardLogger(save_dir=save_dir, name="tb", default_hp_metric=False, metric_names=metric_names),
    ]


def bind(loggers: Sequence[Any], trainer: L.Trainer) -> None:
    """Let the step-convention loggers read the trainer's ``global_step``."""
    for lg in loggers:
        if isinstance(lg, _StepsDone):
            lg.bind(trainer)
