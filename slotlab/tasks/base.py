"""The task interface: what slotlab needs to know about a task (object discovery, set prediction, ...) to train
and evaluate it through one path (``slotlab train / eval / figures / report``).

A task is described once, by a subclass of :class:`Task` in its own module (or folder) under ``slotlab/tasks/``,
registered with :func:`slotlab.tasks.register`: its name and config schema
(:class:`slotlab.config_schema.TaskSchema`, usually in ``<task>/schema.py``), the model, the data (one DataModule
and one held-out loader used by train, eval, figures and report alike), the loss, the validation metrics and the
evaluation. How it is shown (CLI text, CSV rows, plots, figures, the report) is its :class:`Presenter`'s
(:mod:`slotlab.tasks.presenter`), named by :attr:`Task.presenter_class`. Nothing here knows Lightning: the
training stack (:class:`slotlab.train.module.SlotModule`) hands a task a :class:`ValidationContext` and logs
what :meth:`Task.validation_metrics` returns. Paper: Sections 2.2-2.3 / 4.1-4.2.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from slotlab.errors import UsageError
from slotlab.tasks.common import (
    DEFAULT_OPTIONS,
    DEFAULT_SETTING,
    EVAL_SEED,
    EvalFlags,
    EvalOptions,
    EvalSetting,
    ExportSpec,
    FigureOptions,
    SegmentRequest,
    TransferCheck,
    ValidationBatch,
    ValidationContext,
    eval_noise,
    figure_scale,
    image_to_model,
    reconstructs,
    run_model,
    slot_attention_of,
    slot_shape,
)
from slotlab.tasks.presenter import Curve, Presenter

if TYPE_CHECKING:  # annotations only: importing a task loads neither Lightning nor the training stack
    import lightning as L

    from slotlab.config_schema import TaskSchema

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_SETTING",
    "EVAL_SEED",
    "Curve",
    "EvalFlags",
    "EvalOptions",
    "EvalSetting",
    "ExportSpec",
    "FigureOptions",
    "OfficialModel",
    "Presenter",
    "SegmentRequest",
    "Task",
    "TransferCheck",
    "ValidationBatch",
    "ValidationContext",
    "eval_noise",
    "figure_scale",
    "image_to_model",
    "run_model",
    "slot_attention_of",
    "slot_shape",
]


@dataclass(frozen=True)
class OfficialModel:
    """How the official Slot Attention code's model of a task maps onto slotlab's (``slotlab import-official``):
    the Keras class, the packaged config with its training settings, the variables of the task's head below the
    model layer as (TF name, slotlab parameter names, layout), the TF name prefix that marks the head, and the
    factor the image size must be a multiple of."""

    keras_class: str
    config: str
    head: tuple[tuple[str, tuple[str, ...], str], ...]
    head_prefix: str
    resolution_factor: int


class Task(ABC):
    """One task, described once (see the module docstring). Class attributes are plain data; methods compute."""

    name: ClassVar[str]  # the config's ``task:``
    title: ClassVar[str]  # in words, for messages: "object discovery"
    schema: ClassVar[TaskSchema]  # its config keys (defaults, rules, resume flags, docs, model arguments)
    defaults: ClassVar[dict[str, Any]]  # the config when nothing is set: ``schema.defaults()``
    monitor: ClassVar[str]  # held-out metric the best checkpoint is chosen by
    monitor_mode: ClassVar[str] = "max"  # "max": higher is better; "min": lower is better
    metrics: ClassVar[tuple[str, ...]]  # the held-out metrics every validation logs (``val/...``)
    progress_metrics: ClassVar[tuple[str, ...]] = ()  # of those, the ones the progress bar shows
    score: ClassVar[tuple[str, str]]  # (name, results key) of the headline score, e.g. ("FG-ARI", "fg_ari_mean")
    # held-out metric that flags a failed seed while training (slotlab.train.failed_seed); None: no such check
    failed_seed_metric: ClassVar[str | None] = None
    presenter_class: ClassVar[type[Presenter]] = Presenter  # how the reporting layer shows it
    official: ClassVar[OfficialModel | None] = None  # its model in the official code (import-official), if any
    paper_scores: ClassVar[dict[str, dict[str, str]]] = {}  # the paper's number per zoo dataset name, for cards

    @property
    def best_name(self) -> str:
        """File name pattern of the best checkpoint (Lightning's ModelCheckpoint)."""
        short = self.monitor.removeprefix("val/").replace("_", "")
        return f"best-step{{step:07d}}-{short}{{{self.monitor}:.4f}}"

    @property
    def adjective(self) -> str:
        """The title as an adjective with its article, for messages: "an object-discovery" (model)."""
        words = self.title.replace(" ", "-")
        return f"{'an' if words[:1] in tuple('aeiou') else 'a'} {words}"

    @cached_property
    def presenter(self) -> Presenter:
        """The task's presentation (:mod:`slotlab.tasks.presenter`)."""
        return self.presenter_class(self)

    # ------------------------------------------------------------------ Python API (slotlab.load_model)
    clip_input: ClassVar[bool] = False  # inputs are clips [B, T, 3, H, W] (one frame = one image), not images

    def api_forward(
        self, model: nn.Module, cfg: dict[str, Any], x: torch.Tensor, num_slots: int | None, iters: int | None,
        seed: int,
    ) -> dict[str, torch.Tensor] | None:  # fmt: skip
        """``slotlab.load_model(...)(x)`` for a task whose model is not run as an image model: the fields of
        :class:`slotlab.inference.api.SlotModelOutput` (slots, masks, attn, recon, recons); None: the image path."""
        return None

    def export_spec(self, model: nn.Module, cfg: dict[str, Any], frames: int | None) -> ExportSpec | None:
        """``slotlab export`` of a model that is not exported as an image model (image + slot-init noise): what to
        trace (:class:`ExportSpec`); ``frames``: the clip length of a clip-input model (None: the task's default).
        None (default): the image path of :mod:`slotlab.inference.export`."""
        return None

    def transfer_check(self, model: nn.Module, cfg: dict[str, Any]) -> TransferCheck | None:
        """``slotlab data compare REAL --model``: the task's check of ``model`` on real renders against built-in ones
        (:class:`TransferCheck`); None (default): the task has none."""
        return None

    # ------------------------------------------------------------------ config
    def check_config(self, cfg: dict[str, Any]) -> None:
        """Constraints between the task's config keys (ConfigError), after every value passed its rule."""
        return None

    def check_data_source(self, cfg: dict[str, Any]) -> None:
        """ConfigError when the config's data files / folders cannot be read (before a run starts)."""
        return None

    def example_bytes(self, cfg: dict[str, Any]) -> int:
        """Bytes one held-out or training example takes in memory (uint8 image + mask by default)."""
        h, w = self.image_size(cfg)
        return 4 * h * w

    def check_eval_flags(self, cfg: dict[str, Any], flags: EvalFlags) -> None:
        """UsageError for ``slotlab eval`` flags that do not apply to this task's model (instead of ignoring
        them); the model-kind checks shared by every task are :func:`slotlab.validate.check_eval_flags`'."""
        if flags.objects:
            raise UsageError(f"--objects does not apply to {self.title}: its images are not selected by object count")

    # ------------------------------------------------------------------ model and data
    @abstractmethod
    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        """(H, W) of the model's input images."""

    @abstractmethod
    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        """The model a config describes."""

    @abstractmethod
    def datamodule(self, cfg: dict[str, Any]) -> L.LightningDataModule:
        """Training stream and held-out images of a config's ``data`` section (``.eval``: the held-out tensors)."""

    @abstractmethod
    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        """The first ``count`` images of a held-out split as tensors (image uint8 [n, 3, H, W], ...): the same
        images for train's validation, eval, figures and report."""

    def data_with_path(self, data_cfg: dict[str, Any], data_path: str) -> dict[str, Any]:
        """The ``data`` section reading ``data_path`` (``slotlab eval --data-path``) instead of its own data."""
        return {**data_cfg, "path": str(data_path)}

    # ------------------------------------------------------------------ training
    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor], image: torch.Tensor, noise: Any) -> Any:
        """The model's output on a training batch (``image``: its images in model units; ``noise``: the step's
        slot-init noise, None for a model without Slot Attention). Default: the model on the images alone."""
        return run_model(model, image, noise)

    def probe(
        self, model: nn.Module, cfg: dict[str, Any], size: tuple[int, int], num_slots: int | None, iters: int | None
    ) -> torch.Tensor:
        """One example of zeros through ``model`` (at K / T, when given), for the config check's footprint (run on
        the meta device): the output whose mean is backpropagated. Default: an image [1, 3, H, W]; the output's
        ``pred`` or ``recon``."""
        kwargs = {k: v for k, v in (("num_slots", num_slots), ("iters", iters)) if v is not None}
        out = model(torch.zeros(1, 3, *size), **kwargs)
        return out.pred if hasattr(out, "pred") else out.recon

    @abstractmethod
    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (``image``: the batch's images in model units)."""

    @abstractmethod
    def validation_step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], batch_idx: int, ctx: ValidationContext
    ) -> ValidationBatch:
        """The held-out values of one validation batch to keep (and, if ``ctx.want_figures``, the figure tensors)."""

    @abstractmethod
    def validation_metrics(self, values: dict[str, torch.Tensor], ctx: ValidationContext) -> dict[str, Any]:
        """The held-out metrics (``val/...``: :attr:`metrics`) of a validation from the concatenated ``values`` of
        its batches (this process's; ``ctx.gather`` collects every process's)."""

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

    def eval_data_key(self, setting: EvalSetting) -> tuple:
        """Settings with the same key are evaluated on the same :meth:`eval_data` (loaded once)."""
        return ()

    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        """The settings a ``slotlab eval`` sweep evaluates, and the K and T names of its result file."""
        ks: list[int | None] = list(num_slots or [None])
        ts: list[int | None] = list(iters or [None])
        return [EvalSetting(k, t) for k in ks for t in ts], ks, ts

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Facts of the run recorded in results.json next to the evaluation (dataset, variant, ...)."""
        return {}

    # ------------------------------------------------------------------ zoo
    def zoo_dataset(self, cfg: dict[str, Any]) -> str:
        """The dataset a zoo card names for a model of this config."""
        return str(cfg["data"].get("name", "?"))

    def paper_score(self, cfg: dict[str, Any]) -> dict[str, str] | None:
        """The paper's number a zoo card shows next to its measured score (:attr:`paper_scores`), or None."""
        return self.paper_scores.get(self.zoo_dataset(cfg))

    def checks_domain(self, model: nn.Module) -> bool:
        """Whether ``slotlab eval --data-path`` compares the evaluated images' reconstruction error with the model's
        held-out one (:mod:`slotlab.inference.domain_eval`): models that reconstruct images."""
        return reconstructs(model)

    def domain_images(self, cfg: dict[str, Any], count: int, split: str) -> torch.Tensor | None:
        """uint8 images [n, 3, H, W] whose reconstruction error a zoo card records for ``slotlab segment``'s
        out-of-domain warning (:mod:`slotlab.inference.domain`); None: the task's models do not reconstruct."""
        return None

    def image_preparation(self, model: nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
        """How the task's training images were prepared, for one's own images (``slotlab segment``, the Python
        API; :class:`slotlab.segment.SegmentModel`'s fields): ``dataset``, ``clevr_crop``, ``greyscale``,
        ``squash_aspect``, ``notes``. Default: square images, nothing special."""
        return {"dataset": self.zoo_dataset(cfg), "clevr_crop": False, "greyscale": False, "squash_aspect": None,
                "notes": []}  # fmt: skip

    def describe_slots(self, model: nn.Module, cfg: dict[str, Any]) -> str:
        """The slots of a loaded model in a few words (``slotlab segment``'s model line): "K=4, T=3"."""
        sa = slot_attention_of(model)
        return f"K={sa.num_slots}, T={sa.iters}" if sa is not None else f"K={cfg['model']['num_slots']}, Slot MLP"

    def segment_check(self, model: nn.Module, cfg: dict[str, Any], num_slots: int | None, iters: int | None) -> bool:
        """``slotlab segment``: whether the task segments its own kind of input (:meth:`segment_file`); it then
        raises ValueError when ``num_slots`` / ``iters`` cannot run, or a UserError when its models cannot
        segment. False (default): the inputs are images, segmented by :mod:`slotlab.segment` itself."""
        return False

    def segment_file(self, model: nn.Module, cfg: dict[str, Any], request: SegmentRequest) -> dict[str, Any] | None:
        """``slotlab segment`` of one input of the task's own kind (e.g. a video): read ``request.path``, prepare
        its pictures with ``request.prepare``, run ``model``, write ``<stem>_figure.*`` / ``<stem>_masks.*`` into
        ``request.out_dir``; returns ``{"steps", "paths", "num_slots", "iters"}``. A UserError names an unusable input.
        None (default): images, segmented by :mod:`slotlab.segment` itself."""
        return None

    def official_overrides(self, resolution: int, num_slots: int | None) -> list[str]:
        """Config overrides of an imported official model besides K and T (``slotlab import-official``)."""
        return []
