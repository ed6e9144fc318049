"""What every task and the layers that run tasks share: model-input scaling, the slot-init noise of held-out
images, the settings and flags of an evaluation, the requests of ``slotlab figures`` / ``slotlab segment`` that a
task or its presenter answers, and what a validation batch gives the training stack.

Plain functions and data classes; no task knows another, and nothing here imports Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slotlab.noise import index_noise

EVAL_SEED = 1234  # slot-init noise at evaluation: a function of (EVAL_SEED, image index), see slotlab/noise.py


def image_to_model(image_uint8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 [B, 3, H, W] (or video frames [B, T, 3, H, W]) -> float in [-1, 1] (the reference code's scaling);
    ``channels_last`` applies to 4-D images only (a video model lays out its frames itself). The result's memory
    layout depends on ``channels_last`` only, never on the input's strides: a channels-last-strided uint8 batch (as
    rendered images come) would otherwise take other convolution kernels than the same batch read from a cache, and
    a score would depend on where its images came from (AP 92.4 vs 92.6 % on the same 256 CLEVR10 images)."""
    layout = torch.channels_last if channels_last and image_uint8.dim() == 4 else torch.contiguous_format
    return image_uint8.to(torch.float32, memory_format=layout).div_(127.5).sub_(1.0)  # one copy, in that layout


def slot_attention_of(model: nn.Module) -> nn.Module | None:
    """The model's Slot Attention module, or None for a model without one (the Slot MLP baseline): the one
    place that asks a model whether it has slots to initialise and attention to draw."""
    return getattr(model, "slot_attention", None)


def reconstructs(model: nn.Module) -> bool:
    """Whether ``model`` decodes its slots into images (``recon``, per-slot ``recons`` and alpha ``masks``), as
    against predicting properties from them (``pred``; its masks are then the attention maps)."""
    return getattr(model, "decoder", None) is not None


def slot_shape(model: nn.Module, num_slots: int | None = None) -> tuple[int, int]:
    """(K, features) of the slot-init noise (features: D, or more where the module draws more per slot, e.g. the
    initial frames of Invariant Slot Attention), or (0, 0) for models without Slot Attention."""
    sa = slot_attention_of(model)
    if sa is None:
        return 0, 0
    return (num_slots or sa.num_slots), sa.noise_dim


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


# ---------------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class EvalSetting:
    """One evaluated setting of ``slotlab eval``: K, T (None: the model's) and, for a task that selects images by
    their number of objects, that number (None: all images)."""

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


@dataclass(frozen=True)
class EvalFlags:
    """The test-time flags of ``slotlab eval`` / ``slotlab figures`` that a task checks against its model
    (:meth:`slotlab.tasks.base.Task.check_eval_flags`); None / empty: not given."""

    num_slots: list[int] | None = None
    iters: list[int] | None = None
    objects: list[int] | None = None
    split: str = "eval"
    ari_undefined: str | None = None
    data_path: str | None = None


# ---------------------------------------------------------------------------------------------- figures, segment
@dataclass(frozen=True)
class FigureOptions:
    """How ``slotlab figures`` draws: ``about`` (the model and step, for the titles), K and T at test time (None:
    the model's), the slot-noise seed (None: the task's figure seed) and the tile upscaling (None: automatic)."""

    about: str = ""
    num_slots: int | None = None
    iters: int | None = None
    seed: int | None = None
    scale: int | None = None


@dataclass(frozen=True)
class SegmentRequest:
    """One input of ``slotlab segment`` that a task segments itself (:meth:`slotlab.tasks.base.Task.segment_file`):
    the file, where to write and under which stem, K / T (None: the model's), the slot-noise seed, the vector
    formats besides PNG, the image preparation of :mod:`slotlab.segment` (uint8 [N, H, W, 3] -> the model's size,
    and the steps taken) and the checkpoint's name (for the titles)."""

    path: Path
    out_dir: Path
    stem: str
    num_slots: int | None
    iters: int | None
    seed: int
    formats: Sequence[str]
    prepare: Callable[[np.ndarray], tuple[np.ndarray, list[str]]]
    source: str


# ---------------------------------------------------------------------------------------------- export
@dataclass
class ExportSpec:
    """What ``slotlab export`` traces (:mod:`slotlab.inference.export`): ``module`` (its forward takes ``inputs``,
    in order, and returns plain tensors named ``outputs``), example inputs, the dynamic dimensions of each input by
    name (``{"image": {0: torch.export.Dim(...)}}``) and the inputs in words, for the CLI's line."""

    module: nn.Module
    example: tuple[torch.Tensor, ...]
    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, Any]]
    about: str


# ---------------------------------------------------------------------------------------------- transfer
@dataclass
class TransferCheck:
    """What ``slotlab data compare REAL --model M`` (:mod:`slotlab.inference.transfer`) needs of M's task: the
    built-in ``variant`` M was trained on (the renders to compare with), the most objects per scene it can score
    (``max_objects``: real scenes with more are left out), and ``builtin_data(renders)``: the renderer's output as
    the task's held-out examples (name -> array)."""

    variant: str
    max_objects: int
    builtin_data: Callable[[dict[str, Any]], dict[str, Any]]


# ---------------------------------------------------------------------------------------------- validation
def _stack(t: torch.Tensor) -> torch.Tensor:
    return t[None]


@dataclass
class ValidationContext:
    """What a task's validation needs to know of the run, without the training stack: the config, the memory
    layout, the step, the device, whether to keep the batch's figure tensors, and the processes of the run
    (``gather``: a tensor of this process -> [world, ...] of every process; one process: ``t[None]``)."""

    config: dict[str, Any]
    channels_last: bool = False
    step: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    want_figures: bool = False
    world_size: int = 1
    gather: Callable[[torch.Tensor], torch.Tensor] = _stack

    def mean_over_processes(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over the processes (what Lightning's ``sync_dist`` logs)."""
        return value if self.world_size == 1 else self.gather(value).float().mean()


@dataclass
class ValidationBatch:
    """What a task keeps of one validation batch: per-image (or per-batch) tensors to concatenate over the held-out
    set, by name, and (when :attr:`ValidationContext.want_figures`) the tensors its presenter draws after the
    validation (first images of the first batch; the training stack keeps ``trainer.num_figure_images`` of them)."""

    values: dict[str, torch.Tensor]
    figures: dict[str, torch.Tensor] | None = None


def eval_iters(cfg: dict[str, Any]) -> int:
    """T at evaluation: ``model.eval_iters`` where set, else the trained ``model.iters`` (the paper's tables)."""
    return int(cfg["model"].get("eval_iters") or cfg["model"]["iters"])


def iters_note(cfg: dict[str, Any]) -> str:
    """``; T=7 at evaluation (model.eval_iters; trained with T=3, ...)`` where the key is set, else ``""``."""
    t = cfg["model"].get("eval_iters")
    if t is None:
        return ""
    return f"; T={t} at evaluation (model.eval_iters; trained with T={cfg['model']['iters']}, the paper's protocol)"
