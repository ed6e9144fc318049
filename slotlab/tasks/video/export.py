"""``slotlab export`` of a SAVi model (:meth:`slotlab.tasks.video.Video.export_spec`): the traced function takes
clips [B, T, 3, H, W] in [-1, 1] and what the model's slot initialisation needs (first-frame boxes [B, M, 4] or
points [B, M, 2] for a conditional model, N(0, 1) slot-init noise [B, K, D] for a sampled one, nothing for learned
slots) and returns recon [B, T, C, H, W], masks [B, T, K, H, W], slots [B, T, K, D] and attn [B, T, K, N] of every
frame. The batch size is dynamic; T is fixed at export (the recurrence over frames is unrolled when traced, so
``torch.export`` cannot keep T symbolic), and so is M (the number of boxes; absent objects are zero boxes, as in
training). Running the whole clip at once equals SAVi's sliced evaluation (each slice starts from the previous
slice's predicted state).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from slotlab.tasks.common import ExportSpec
from slotlab.tasks.video.run import SAMPLED_INITS

OUTPUTS = ["recon", "masks", "slots", "attn"]


class ClipForward(nn.Module):
    """SAVi's forward on a whole clip with its one extra input (``kind``: "conditioning", "noise" or None) and plain
    tensor outputs (what exporters need)."""

    def __init__(self, model: nn.Module, kind: str | None) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, video: Tensor, extra: Tensor | None = None) -> tuple[Tensor, ...]:
        kwargs = {self.kind: extra} if self.kind else {}
        out = self.model(video, **kwargs)
        return out.recon, out.masks, out.slots, out.attn  # [B,T,C,H,W] [B,T,K,H,W] [B,T,K,D] [B,T,K,N]


def export_spec(model: nn.Module, cfg: dict[str, Any], frames: int | None) -> ExportSpec:
    """What to trace for ``model`` (a SAVi) of config ``cfg``: clips of ``frames`` frames (default: the training
    clip length ``data.num_frames``), batch 2 in the example, batch dynamic."""
    t = int(frames or cfg["data"]["num_frames"])
    h, w = model.resolution
    init = model.initializer
    video = torch.zeros(2, t, 3, h, w)
    batch = torch.export.Dim("batch", min=1, max=65536)
    targets = " + ".join(f"{name} ({c})" for name, c in model.targets)
    about = f"inputs video [B, {t}, 3, {h}, {w}] in [-1, 1]"
    if init.conditional:
        m = int(cfg["data"]["max_objects"])
        coords, what = (4, "(ymin, xmin, ymax, xmax)") if init.kind == "boxes" else (2, "(y, x)")
        name, kind, extra = init.kind, "conditioning", torch.zeros(2, m, coords)
        k = m + int(init.prepend_background)
        about += f" and first-frame {init.kind} [B, {m}, {coords}] {what} in [0, 1] (zeros: no object)"
    elif init.kind in SAMPLED_INITS:
        k = init.num_slots
        name, kind, extra = "noise", "noise", torch.zeros(2, k, model.slot_dim)
        about += f" and slot-init noise [B, {k}, {model.slot_dim}] of N(0, 1) samples"
    else:  # learned slots: nothing but the clip
        k, name, kind, extra = init.num_slots, "", None, None
    about += f"; outputs recon [B, {t}, C, {h}, {w}] (C: {targets}), masks, slots, attn of K={k} slots per frame"
    about += f"; batch size dynamic, T fixed at {t} (--frames)"
    if extra is None:
        return ExportSpec(ClipForward(model, None).eval(), (video,), ["video"], OUTPUTS, {"video": {0: batch}}, about)
    dynamic = {"video": {0: batch}, "extra": {0: batch}}
    return ExportSpec(ClipForward(model, kind).eval(), (video, extra), ["video", name], OUTPUTS, dynamic, about)
