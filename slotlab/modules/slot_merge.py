"""Merging duplicate slots at inference (an option, not in the Slot Attention paper).

Short CPU runs leave some objects split over two slots that are near-copies of each other (docs/results.md,
"duplicate slots on CLEVR6"). With ``model.merge_slots = tau``, slots whose mean-centred vectors have a cosine
similarity above tau are grouped (chained: a ~ b and b ~ c put a, b, c in one group); each group's alpha masks are
added into its first slot, whose RGB becomes the group's mask-weighted mean, and the group's other slots get empty
masks. The reconstruction is unchanged; the segmentation (argmax over the masks) counts each group once. In the
spirit of DIAS (Zhao et al., "Slot Attention with Re-Initialization and Self-Distillation", 2025), which removes
redundant slots by similarity (and then runs Slot Attention again, which this does not).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def slot_groups(slots: Tensor, threshold: float) -> Tensor:
    """slots [B, K, D] -> group [B, K]: the smallest slot index of each slot's group of near-copies (chained
    mean-centred cosine similarity > ``threshold``)."""
    b, k, _ = slots.shape
    f = slots.float()
    f = F.normalize(f - f.mean(-1, keepdim=True), dim=-1)
    linked = (f @ f.transpose(1, 2)) > threshold  # [B, K, K]
    linked |= torch.eye(k, dtype=torch.bool, device=slots.device)  # reflexive even for a constant slot vector
    group = torch.arange(k, device=slots.device).expand(b, k)
    for _ in range(k):  # a chain is at most K long: K rounds of taking the smallest linked label
        group = torch.where(linked, group[:, None, :], k).amin(-1)
    return group


def merge_duplicate_slots(slots: Tensor, masks: Tensor, recons: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Masks [B, K, 1, H, W] and per-slot RGB [B, K, C, H, W] with each group of near-copy slots merged into its
    first slot (the others' masks become 0). Returns (masks, recons) of the same shapes and dtypes."""
    k = slots.shape[1]
    onehot = F.one_hot(slot_groups(slots, threshold), k).to(masks.dtype)  # [B, K (slot), K (group)]
    merged = torch.einsum("bkg,bk...->bg...", onehot, masks)  # [B, K, 1, H, W]: group masks at their first slot
    weighted = torch.einsum("bkg,bk...->bg...", onehot, masks * recons)  # [B, K, C, H, W]
    size = onehot.sum(1)  # [B, K]: slots in the group led by each slot (0: merged into another)
    mixed = (size > 1).view(*size.shape, *([1] * (masks.dim() - 2))) & (merged > 0)  # a group's own RGB
    rgb = torch.where(mixed, weighted / torch.where(mixed, merged, torch.ones_like(merged)), recons)
    return merged, rgb.to(recons.dtype)
