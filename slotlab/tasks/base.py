"""The task interface: what slotlab needs to know about a task (object discovery, set prediction, ...) to train,
evaluate, draw and report it through one path (``slotlab train / eval / figures / report``).

A task is described once, by a subclass of :class:`Task` in its own module under ``slotlab/tasks/``: its config
schema with the paper's defaults (:mod:`slotlab.defaults`), the model builder, the data (one DataModule and one
held-out loader used by train, eval, figures and report alike), the loss, the validation metrics, the evaluation,
the figures and the report's learning curves. The training loop (:class:`slotlab.train.module.SlotModule`,
:func:`slotlab.train.fit.train`) and the CLI only ever call these methods. Paper: Sections 2.2-2.3 / 4.1-4.2.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from slotlab.noise import index_noise

if TYPE_CHECKING:  # annotations only: importing a task loads neither Lightning nor the training stack
    import lightning as L

    from slotlab.drawing import LabelledGrid

EVAL_SEED = 1234  # slot-init noise at evaluation: a function of (EVAL_SEED, image index), see slotlab/noise.py


def image_to_model(image_uint8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float [B, 3, H, W] in [-1, 1] (the reference code's scaling)."""
    x = image_uint8.float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def slot_attention_of(model: nn.Module) -> nn.Module | None:
    """The model's Slot Attention module, or None for a model without one (the Slot MLP baseline): the one
    place that asks a model whether it has slots to initialise and attention to draw."""
    return getattr(model, "slot_attention", None)


def slot_shape(model: nn.Module, num_slots: int | None = None) -> tuple[int, int]:
    """(K, D) of the slot-init noise, or (0, 0) for models without Slot Attention."""
    sa = slot_attention_of(model)
    if sa is None:
        return 0, 0
    return (num_slots or sa.num_slots), sa.dim


def eval_noise(model: nn.Module, index: torch.Tensor, num_slots: int | None, seed: int) -> torch.Tensor | None:
    """Slot-init noise [B, K, D] of held-out images ``index`` [B]: a function of (seed, image index) only;
    None for a model without Slot Attention."""
    if slot_attention_of(model) is None:
        return None
    return index_noise(seed, index, *slot_shape(model, num_slots))


def figure_scale(image_hw: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that an image is drawn at least ~``target`` pixels tall (35x35 Tetrominoes: 4)."""
    return max(1, -(-target // max(1, min(image_hw))))


def run_model(model: nn.Module, image: torch.Tensor, noise: torch.Tensor | None, **kwargs: Any) -> Any:
    """Forward with the given slot-init noise (models without Slot Attention take no noise)."""
    if slot_attention_of(model) is None:
        return model(image, **kwargs)
    return model(image, noise=noise, **kwargs)


@dataclass(frozen=True)
class Curve:
    """One panel of the report's learning curves: title, candidate metrics.csv columns, y label, and the
    column of its +- band (if any)."""

    title: str
    columns: tuple[str, ...]
    ylabel: str
    band: str | None = None
    log_scale: bool = False


@dataclass(frozen=True)
class EvalSetting:
    """One evaluated setting of ``slotlab eval``: K, T (None: the model's) and, for set prediction, the exact
    number of objects per image (None: all images)."""

    num_slots: int | None = None
    iters: int | None = None
    objects: int | None = None


DEFAULT_SETTING = EvalSetting()  # the model's own K and T, all images


@dataclass(frozen=True)
class EvalOptions:
    """How an evaluation runs: slot-noise seed, ARI convention where it is 0/0 (None: the run's), batch size
    (None: ``data.eval_batch_size``), channels_last memory layout."""

    seed: int = EVAL_SEED
    ari_undefined: str | None = None
    batch_size: int | None = None
    channels_last: bool = False


DEFAULT_OPTIONS = EvalOptions()


class Task(ABC):
    """One task of the paper, described once (see the module docstring)."""

    name: str  # the config's ``task:``
    defaults: dict[str, Any]  # the config schema with the paper's defaults
    monitor: str  # held-out metric the best checkpoint is chosen by
    best_name: str  # file name pattern of the best checkpoint
    score: tuple[str, str]  # (name, results key) of the headline score, e.g. ("FG-ARI", "fg_ari_mean")
    curves: tuple[Curve, ...]  # the report's learning curves
    figure_names: tuple[str, ...]  # the PNGs ``slotlab figures`` writes
    # held-out metric that flags a failed seed while training (slotlab.train.failed_seed); None: no such check
    failed_seed_metric: str | None = None

    def heldout_metrics(self) -> list[str]:
        """The held-out metrics every validation logs (``val/...``, from :attr:`curves`): TensorBoard's hparams
        metrics."""
        names = [self.monitor]
        for curve in self.curves:
            names += [c for c in (*curve.columns, curve.band) if c and c.startswith("val/") and c not in names]
        return names

    # ------------------------------------------------------------------ model and data
    @abstractmethod
    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        """(H, W) of the model's input images."""

    @abstractmethod
    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        """The model a config describes (``model.kind``: slot_attention | slot_mlp)."""

    @abstractmethod
    def datamodule(self, cfg: dict[str, Any]) -> L.LightningDataModule:
        """Training stream and held-out images of a config's ``data`` section."""

    @abstractmethod
    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        """The first ``count`` images of a held-out split as tensors (image uint8 [n, 3, H, W], ...): the same
        images for train's validation, eval, figures and report."""

    # ------------------------------------------------------------------ training
    @abstractmethod
    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (``image``: the batch's images in model units)."""

    @abstractmethod
    def validation_step(self, module: L.LightningModule, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulate the held-out metrics of one validation batch in ``module.val_store``."""

    @abstractmethod
    def validation_end(self, module: L.LightningModule) -> None:
        """Log the held-out metrics (``val/...``) from ``module.val_store``."""

    def validation_figures(
        self, model: nn.Module, batch: dict[str, torch.Tensor], about: str
    ) -> dict[str, LabelledGrid]:
        """The figures of one validation, by TensorBoard tag, from what :meth:`validation_step` kept in
        ``module.last_val_batch``; ``about``: the run and step, for the titles. The training stack writes them
        (``trainer.figure_every_val``) under the names :meth:`validation_figure_files` gives. None by default."""
        return {}

    def validation_figure_files(self, tag: str, step: int) -> list[str]:
        """The file names (in the run's ``figures/``) of validation figure ``tag`` at training step ``step``."""
        return []

    # ------------------------------------------------------------------ evaluation
    @abstractmethod
    def evaluate(
        self,
        model: nn.Module,
        data: dict[str, torch.Tensor],
        cfg: dict[str, Any],
        setting: EvalSetting = DEFAULT_SETTING,
        options: EvalOptions = DEFAULT_OPTIONS,
    ) -> dict[str, Any]:
        """The task's held-out metrics of ``model`` on ``data`` (from :meth:`heldout`) at one setting."""

    def eval_data(
        self, cfg: dict[str, Any], data_cfg: dict[str, Any], split: str, count: int, setting: EvalSetting
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The held-out tensors a setting is evaluated on, and facts to record with it."""
        return self.heldout(data_cfg, split, count), {}

    @abstractmethod
    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        """The settings a ``slotlab eval`` sweep evaluates, and the K and T names of its result file."""

    @abstractmethod
    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        """What ``slotlab eval`` prints for one setting."""

    @abstractmethod
    def eval_record(self, result: dict[str, Any], setting: EvalSetting, cfg: dict[str, Any]) -> dict[str, Any]:
        """The row of one setting in the sweep CSV and evals.jsonl (after the shared settings)."""

    def eval_file_row(self, result: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """What the JSON file of a single evaluated setting holds (after the shared settings)."""
        return record

    @abstractmethod
    def plot_sweep(self, rows: list[dict[str, Any]], png: Path, cfg: dict[str, Any]) -> Path:
        """The plot of a ``slotlab eval`` sweep."""

    @abstractmethod
    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        """What ``slotlab train`` prints at the end (the final held-out evaluation)."""

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Facts of the run recorded in results.json next to the evaluation (dataset, variant, ...)."""
        return {}

    # ------------------------------------------------------------------ figures
    @abstractmethod
    def figure_grids(
        self,
        model: nn.Module,
        cfg: dict[str, Any],
        data: dict[str, torch.Tensor],
        about: str = "",
        num_slots: int | None = None,
        iters: int | None = None,
        seed: int | None = None,
        scale: int | None = None,
    ) -> dict[str, LabelledGrid]:
        """The paper's figures of this task for held-out ``data`` (from :meth:`heldout`), by file name (one of
        :attr:`figure_names`), each a labelled grid (:mod:`slotlab.drawing` draws and writes it). ``about``: the
        model and training step, for the titles."""
