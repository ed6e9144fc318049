"""The figures of every validation during training (rank 0): object discovery's slots (paper Figure 3 (a)) and
attention per iteration (Figure 3 (b)), set prediction's attention masks (Figure 6), on the first held-out images,
labelled like the figures of `slotlab figures` (:mod:`slotlab.drawing`: column titles, iteration rows, slot
legend, the run and the training step in the title). Written into the run's ``figures/`` folder under the step
(``step_0001000.png``: the number of optimizer steps done, as in metrics.csv and the checkpoint names) and sent to
TensorBoard as images at that step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger

from slotlab.drawing import LabelledGrid, render, to_array
from slotlab.tasks.base import slot_attention_of
from slotlab.viz import attention_grid, discovery_grid, figure6_grid, save_png


def figure_scale(image_hw: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that an image is drawn at least ~``target`` pixels tall (35x35 Tetrominoes: 4)."""
    return max(1, -(-target // max(1, min(image_hw))))


class ValidationFigures(L.Callback):
    """Base: the task's figures of ``pl_module.last_val_batch`` after each validation (not the sanity check)."""

    def __init__(self, out_dir: Path, scale: int | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.scale = scale

    def grids(self, pl_module: L.LightningModule, batch: dict, about: str) -> dict[str, LabelledGrid]:
        """TensorBoard tag -> grid."""
        raise NotImplementedError

    def files(self, tag: str, step: int) -> list[str]:
        """The file names of the figure ``tag`` at ``step``."""
        raise NotImplementedError

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch = getattr(pl_module, "last_val_batch", None)
        if batch is None or not trainer.is_global_zero or trainer.sanity_checking:
            return
        step = trainer.global_step  # optimizer steps done: the step of this validation's metrics and checkpoint
        about = f"{self.out_dir.parent.name} · step {step} · validation images"
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        for tag, grid in self.grids(pl_module, batch, about).items():
            image = to_array(render(grid))
            for name in self.files(tag, step):
                save_png(image, self.out_dir / name)
            for lg in loggers:
                lg.experiment.add_image(f"figures/{tag}", np.ascontiguousarray(image), step, dataformats="HWC")


class FigureCallback(ValidationFigures):
    """Object discovery: figures/step_XXXXXXX.png and latest.png (Image | Reconstruction | Mask | Slot k) and
    figures/attention_step_XXXXXXX.png (attention per iteration, first 2 images; not for the Slot MLP)."""

    def grids(self, pl_module: L.LightningModule, batch: dict, about: str) -> dict[str, LabelledGrid]:
        s = self.scale or figure_scale(tuple(batch["image"].shape[-2:]))
        k = batch["masks"].shape[1]
        out = {
            "slots": discovery_grid(
                batch["image"], batch["recon"], batch["masks"], batch["recons"], s, f"slots · {about} · K={k}"
            )
        }
        if slot_attention_of(pl_module.model) is not None:  # the Slot MLP baseline has no attention maps
            grid = pl_module.model.encoder.feature_resolution
            t = batch["attn"].shape[1]
            title = f"attention per iteration · {about} · K={k}, T={t}"
            out["attention"] = attention_grid(batch["image"][:2], batch["attn"][:2], grid, s, title)
        return out

    def files(self, tag: str, step: int) -> list[str]:
        return [f"step_{step:07d}.png", "latest.png"] if tag == "slots" else [f"attention_step_{step:07d}.png"]


class SetPredictionFigureCallback(ValidationFigures):
    """Set prediction: figures/attention_step_XXXXXXX.png and attention_latest.png (Figure 6, first images)."""

    def __init__(self, out_dir: Path, num_images: int = 2, scale: int | None = None) -> None:
        super().__init__(out_dir, scale)
        self.num_images = num_images

    def grids(self, pl_module: L.LightningModule, batch: dict, about: str) -> dict[str, LabelledGrid]:
        if slot_attention_of(pl_module.model) is None:  # the Slot MLP baseline has no attention maps
            return {}
        n = self.num_images
        s = self.scale or max(2, figure_scale(tuple(batch["image"].shape[-2:])))
        _, t, k, _ = batch["attn"].shape
        title = f"attention masks per iteration · {about} · K={k}, T={t}"
        grid = pl_module.model.encoder.feature_resolution
        return {"attention": figure6_grid(batch["image"][:n], batch["attn"][:n], grid, s, title)}

    def files(self, tag: str, step: int) -> list[str]:
        return [f"attention_step_{step:07d}.png", "attention_latest.png"]
