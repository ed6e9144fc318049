"""How the reporting layer shows a task: the lines ``slotlab train`` and ``slotlab eval`` print, the rows of the
eval CSV / JSON files, the sweep plot, the report's learning curves, summary and captions, and the figures of
``slotlab figures`` and of every validation.

The CLI, :mod:`slotlab.report`, :mod:`slotlab.figures` and the training stack's figure callback ask a task's
:class:`Presenter` (``task.presenter``) and nothing else; a task without presentation of its own gets this base
class, which works from plain data of the task (its :attr:`~slotlab.tasks.base.Task.metrics` and
:attr:`~slotlab.tasks.base.Task.score`): a new task needs no presenter until it wants its own text or pictures.

A figure is a :class:`slotlab.drawing.LabelledGrid` or any object with ``write(path, formats) -> list[Path]``
(e.g. an animation that writes a GIF): :func:`slotlab.figures.make_figures` writes either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from slotlab.tasks.common import EvalSetting, FigureOptions

if TYPE_CHECKING:
    import torch

    from slotlab.drawing import LabelledGrid


@dataclass(frozen=True)
class Curve:
    """One panel of the report's learning curves: title, candidate metrics.csv columns, y label, the column of its
    +- band (if any), log scale, and whether the columns are alternatives (the first one logged is drawn, e.g.
    ``train/lr`` or the older ``lr-Adam``) or distinct series (each one drawn, e.g. AP per threshold)."""

    title: str
    columns: tuple[str, ...]
    ylabel: str
    band: str | None = None
    log_scale: bool = False
    alternatives: bool = True


LOSS_CURVE = Curve("training loss", ("train/loss",), "loss", log_scale=True)
LR_CURVE = Curve("learning rate", ("train/lr", "lr-Adam"), "lr")
SETTING_KEYS = ("checkpoint", "split", "seed", "num_slots", "iters", "objects")


def scalars(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a result (no nested tables, no settings)."""
    return {
        k: v
        for k, v in result.items()
        if k not in SETTING_KEYS and isinstance(v, int | float | str | None) and not isinstance(v, bool)
    }


def format_number(v: Any) -> str:
    """A number as the report and the default texts show it: 4 decimals, or 3 significant digits when tiny."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 or not math.isfinite(v) else f"{v:.3e}"
    return str(v)


class TaskFacts(Protocol):
    """The plain data of a task its presenter's defaults read (a :class:`slotlab.tasks.base.Task` has them)."""

    name: str
    title: str
    metrics: tuple[str, ...]
    score: tuple[str, str]


class Presenter:
    """The presentation of ``task`` (see the module docstring); every method has a default from plain data."""

    figure_names: tuple[str, ...] = ()  # the files ``slotlab figures`` writes
    captions: dict[str, str] = {}  # the report's caption of a figure file, by name

    def __init__(self, task: TaskFacts) -> None:
        self.task = task

    # ------------------------------------------------------------------ report
    @property
    def curves(self) -> tuple[Curve, ...]:
        """The report's learning curves: the training loss, each held-out metric, the learning rate."""
        metrics = tuple(
            Curve(f"held-out {m.removeprefix('val/')}", (m,), m.removeprefix("val/")) for m in self.task.metrics
        )
        return (LOSS_CURVE, *metrics, LR_CURVE)

    def summary_items(self, results: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, text) rows of the report's summary about ``results.json``'s held-out scores."""
        name, key = self.task.score
        if key not in results:
            return []
        return [(f"held-out {name}", f"{format_number(results[key])} ({results.get('num_images')} images)")]

    def sweep_args(self, cfg: dict[str, Any]) -> list[str]:
        """The flags of a ``slotlab eval`` sweep this run's model can run (none: no sweep)."""
        return []

    # ------------------------------------------------------------------ slotlab train / eval
    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        """What ``slotlab train`` prints at the end (the last step's weights on the eval split); empty: nothing."""
        name, key = self.task.score
        if key not in result:
            return ""
        return f"{name} of the last step on {result.get('num_images')} eval images: {format_number(result[key])}"

    def format_test(self, result: dict[str, Any], cfg: dict[str, Any], setting: EvalSetting | None = None) -> str:
        """What ``slotlab train`` prints after :meth:`format_result`: the test-split score of the checkpoint the eval
        split picked (``result["test"]``, :func:`slotlab.train.fit.test_of_checkpoint`) at ``setting`` (the task's
        default one, as ``slotlab eval`` names it); empty: none was saved."""
        test = result.get("test")
        if not test:
            return ""
        head = f"best checkpoint (step {test['step']}, chosen on the eval split; {test['checkpoint']}): "
        return head + self.format_eval(test, setting or EvalSetting(), "test", cfg)

    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        """What ``slotlab eval`` prints for one setting."""
        shown = ", ".join(f"{k} {format_number(v)}" for k, v in scalars(result).items() if k != "num_images")
        return f"{self.task.title}: {shown} on {result.get('num_images')} {split} images"

    def eval_record(self, result: dict[str, Any], setting: EvalSetting, cfg: dict[str, Any]) -> dict[str, Any]:
        """The row of one setting in the sweep CSV and evals.jsonl (after the shared settings)."""
        return {"num_slots": setting.num_slots, "iters": setting.iters, **scalars(result)}

    def eval_file_row(self, result: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """What the JSON file of a single evaluated setting holds (after the shared settings)."""
        return record

    def plot_sweep(self, rows: list[dict[str, Any]], png: Path, cfg: dict[str, Any]) -> Path:
        """The plot of a ``slotlab eval`` sweep: the headline score against the swept K / T."""
        from slotlab.plots import plot_sweep

        name, key = self.task.score
        return plot_sweep(rows, png, metric=key, title=name)

    # ------------------------------------------------------------------ figures
    def figure_problem(self, cfg: dict[str, Any]) -> str | None:
        """Why ``slotlab figures`` cannot draw this config's model (a usage error), or None."""
        return None

    def figures(
        self, model: nn.Module, cfg: dict[str, Any], data: dict[str, torch.Tensor], options: FigureOptions
    ) -> dict[str, Any]:
        """The task's figures of held-out ``data`` (the task's :meth:`~slotlab.tasks.base.Task.heldout`), by file
        name (one of :attr:`figure_names`), drawn as ``options`` say. None by default."""
        return {}

    def validation_figures(
        self, model: nn.Module, batch: dict[str, torch.Tensor], about: str
    ) -> dict[str, LabelledGrid]:
        """The figures of one validation by TensorBoard tag, from the ``figures`` tensors the task's validation
        kept (:class:`~slotlab.tasks.common.ValidationBatch`); ``about``: the run and step. None by default."""
        return {}

    def validation_figure_files(self, tag: str, step: int) -> list[str]:
        """The file names (in the run's ``figures/``) of validation figure ``tag`` at training step ``step``."""
        return [f"{tag}_step_{step:07d}.png"]
