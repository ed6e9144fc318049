"""The figures of every validation during training (rank 0): the task's presenter draws them
(:meth:`Presenter.validation_figures <slotlab.tasks.presenter.Presenter.validation_figures>`, e.g. the slots and
attention per iteration of paper Figure 3 (a) and (b), or the attention masks of Figure 6) from the figure tensors
the task's validation kept of the first held-out images, labelled like the figures of `slotlab figures`
(:mod:`slotlab.drawing`). This callback writes them into the run's ``figures/`` folder under the
step (``step_0001000.png``: the number of optimizer steps done, as in metrics.csv and the checkpoint names) and
sends them to TensorBoard as images at that step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger

from slotlab.drawing import render, to_array
from slotlab.tasks.common import figure_scale
from slotlab.tasks.presenter import Presenter
from slotlab.viz import save_png

__all__ = ["ValidationFigures", "figure_scale"]


class ValidationFigures(L.Callback):
    """``presenter``'s figures of ``pl_module.last_val_batch`` after each validation (not the sanity check)."""

    def __init__(self, presenter: Presenter, out_dir: Path) -> None:
        self.presenter = presenter
        self.out_dir = Path(out_dir)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch = getattr(pl_module, "last_val_batch", None)
        if batch is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        step = trainer.global_step  # optimizer steps done: the step of this validation's metrics and checkpoint
        about = f"{self.out_dir.parent.name} · step {step} · validation images"
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        for tag, grid in self.presenter.validation_figures(pl_module.model, batch, about).items():
            image = to_array(render(grid))
            for name in self.presenter.validation_figure_files(tag, step):
                save_png(image, self.out_dir / name)
            for lg in loggers:
                lg.experiment.add_image(f"figures/{tag}", np.ascontiguousarray(image), step, dataformats="HWC")
