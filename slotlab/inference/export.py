"""Exporting a trained model for use outside slotlab: ``torch.export`` (an ExportedProgram, ``.pt2``) or ONNX
(``onnx`` extra). The exported function is the model's forward with the slot-init noise as an input (a model with
a decoder: image [B, 3, H, W] in [-1, 1], noise [B, K, D] -> recon, masks, slots, attn; a model with a property
head -> pred, slots, attn), batch size dynamic. Not part of the paper."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from slotlab.errors import UserError
from slotlab.inference.api import SlotModel
from slotlab.tasks.common import reconstructs, slot_attention_of

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


def exportable(model: SlotModel) -> tuple[nn.Module, tuple[Tensor, Tensor], dict]:
    """(module, example inputs (batch 2), dynamic shapes) of ``model``'s forward."""
    sa = slot_attention_of(model.model)
    if sa is None:
        raise ExportError(
            f"{model.name}: a Slot MLP model has no slot-init noise input; export supports Slot Attention"
        )
    h, w = model.resolution
    example = (torch.zeros(2, 3, h, w), torch.zeros(2, sa.num_slots, sa.dim))
    batch = torch.export.Dim("batch", min=1, max=65536)
    return _Forward(model.model).eval(), example, {"image": {0: batch}, "noise": {0: batch}}


def export_model(model: SlotModel, fmt: str, out: str | Path) -> Path:
    """Write ``model`` as ``fmt`` ("torch-export" or "onnx") to ``out``; returns the path."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    module, example, dynamic = exportable(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torch-export":
        program = torch.export.export(module, example, dynamic_shapes=dynamic)
        torch.export.save(program, str(out))
        return out
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx extra: pip install 'slotlab[onnx]'") from None
    torch.onnx.export(
        module, example, str(out), dynamic_shapes=dynamic, input_names=["image", "noise"],
        output_names=output_names(model.model), verbose=False,
    )  # fmt: skip
    return out
