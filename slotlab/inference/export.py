"""Exporting a trained model for use outside slotlab: ``torch.export`` (an ExportedProgram, ``.pt2``) or ONNX
(``onnx`` extra). The exported function is the model's forward with the slot-init noise as an input (a model with
a decoder: image [B, 3, H, W] in [-1, 1], noise [B, K, D] -> recon, masks, slots, attn; a model with a property
head -> pred, slots, attn), batch size dynamic. A task whose model is not an image model says what to trace itself
(:meth:`slotlab.tasks.base.Task.export_spec`; a video model: clips of a fixed length T, see
:mod:`slotlab.tasks.video.export`). Not part of the paper."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from slotlab.errors import UserError
from slotlab.inference.api import SlotModel
from slotlab.tasks import get_task
from slotlab.tasks.common import ExportSpec, reconstructs, slot_attention_of

FORMATS = {"torch-export": ".pt2", "onnx": ".onnx"}


class ExportError(UserError, ValueError):
    """A model or format that cannot be exported (no Slot Attention, a missing optional package)."""


class _Forward(nn.Module):
    """The model's forward with explicit noise and plain tensor outputs (what exporters need)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, noise: Tensor) -> tuple[Tensor, ...]:
        out = self.model(image, noise=noise)
        if reconstructs(self.model):
            return out.recon, out.masks[:, :, 0], out.slots, out.attn  # [B,3,H,W] [B,K,H,W] [B,K,D] [B,T,K,N]
        return out.pred, out.slots, out.attn  # [B, K, 19] [B, K, D] [B, T, K, N]


def output_names(model: nn.Module) -> list[str]:
    """The names of :class:`_Forward`'s outputs for ``model``."""
    return ["recon", "masks", "slots", "attn"] if reconstructs(model) else ["pred", "slots", "attn"]


def exportable(model: SlotModel) -> tuple[nn.Module, tuple[Tensor, ...], dict]:
    """(module, example inputs (batch 2), dynamic shapes) of ``model``'s forward."""
    spec = export_spec(model)
    return spec.module, spec.example, spec.dynamic


def export_spec(model: SlotModel, frames: int | None = None) -> ExportSpec:
    """What :func:`export_model` traces for ``model``: its task's :meth:`~slotlab.tasks.base.Task.export_spec`, else
    the image forward (image + slot-init noise). ``frames``: the clip length of a video model (ExportError for an
    image model)."""
    task = get_task(model.task)
    spec = task.export_spec(model.model, model.config, frames)
    if spec is not None:
        return spec
    if frames is not None:
        raise ExportError(f"{model.name}: --frames applies to models of clips (video); this one takes images")
    sa = slot_attention_of(model.model)
    if sa is None:
        raise ExportError(
            f"{model.name}: a Slot MLP model has no slot-init noise input; export supports Slot Attention"
        )
    h, w = model.resolution
    example = (torch.zeros(2, 3, h, w), torch.zeros(2, sa.num_slots, sa.dim))
    batch = torch.export.Dim("batch", min=1, max=65536)
    about = f"inputs image [B, 3, {h}, {w}] in [-1, 1] and slot-init noise [B, K, D]; batch size dynamic"
    return ExportSpec(
        _Forward(model.model).eval(), example, ["image", "noise"], output_names(model.model),
        {"image": {0: batch}, "noise": {0: batch}}, about,
    )  # fmt: skip


def export_model(model: SlotModel, fmt: str, out: str | Path, frames: int | None = None) -> Path:
    """Write ``model`` as ``fmt`` ("torch-export" or "onnx") to ``out``; returns the path. ``frames``: the clip
    length T of a video model (default: its training clip length)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    spec = export_spec(model, frames)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torch-export":
        program = torch.export.export(spec.module, spec.example, dynamic_shapes=spec.dynamic)
        torch.export.save(program, str(out))
        return out
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'slotlab[onnx]'") from None
    torch.onnx.export(
        spec.module, spec.example, str(out), dynamic_shapes=spec.dynamic, input_names=spec.inputs,
        output_names=spec.outputs, verbose=False,
    )  # fmt: skip
    return out
