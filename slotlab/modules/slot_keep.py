"""Slots that may draw nothing: AdaSlot's keep / drop decision per slot (an option, not in the Slot Attention paper).

Fan et al., "Adaptive Slot Attention: Object Discovery with Dynamic Slot Number" (CVPR 2024). A small network
scores each slot from the slot and the mean of all slots (the image's context, as in their DynamicViT-style
scorer); a hard keep / drop sample z (Gumbel, straight-through: 0 or 1 forward, the keep probability's gradient
backward) multiplies the decoder's alpha masks, which are then renormalised over the kept slots (their
"mask_normalized" masked slot decoder). The training loss adds ``weight * mean(z)``: a slot pays to be kept, so a
spare slot that only copies an object (a duplicate: dropping it leaves the reconstruction as it was) is dropped,
and the object it was splitting goes whole to one slot. In eval mode z = [keep probability > 1/2], no noise.

Shapes: slots [B, K, D] -> keep logits [B, K]; masks [B, K, 1, H, W].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the keep logit's initial bias: sigmoid(3) = 0.95, so training starts as the paper's model with every slot kept
#: (AdaSlot starts its gate on a trained model; a fresh run binds objects first, then drops what is spare)
INITIAL_KEEP_LOGIT = 3.0
#: added to the renormalisation's denominator where every slot of a pixel is dropped (AdaSlot's 1e-5)
MASK_EPS = 1e-5


class SlotKeepGate(nn.Module):
    """Keep logit of each slot from [the slot's local features, the mean of the slots' global features]."""

    def __init__(self, slot_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(slot_dim)
        self.features = nn.Linear(slot_dim, slot_dim)
        half = slot_dim // 2
        self.local = half  # the first half stays per slot; the rest is averaged over the slots
        self.head = nn.Sequential(
            nn.Linear(slot_dim, half), nn.GELU(), nn.Linear(half, max(half // 2, 1)), nn.GELU(),
            nn.Linear(max(half // 2, 1), 1),
        )  # fmt: skip
        nn.init.constant_(self.head[-1].bias, INITIAL_KEEP_LOGIT)

    def forward(self, slots: Tensor) -> Tensor:
        """slots [B, K, D] -> keep logits [B, K]."""
        x = F.gelu(self.features(self.norm(slots.float())))  # [B, K, D]
        context = x[..., self.local :].mean(1, keepdim=True).expand(-1, x.shape[1], -1)  # [B, K, D - D/2]
        return self.head(torch.cat([x[..., : self.local], context], -1)).squeeze(-1)  # [B, K]

    def decide(self, slots: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Keep decisions z [B, K] in {0, 1}: sampled with the straight-through gradient in training mode, the
        keep probability thresholded at 1/2 in eval mode."""
        logits = self(slots)
        if not self.training:
            return (logits > 0).to(logits.dtype)
        u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp(1e-6, 1 - 1e-6)
        soft = torch.sigmoid(logits + torch.log(u) - torch.log1p(-u))  # binary Gumbel (logistic) sample, tau 1
        hard = (soft > 0.5).to(soft.dtype)
        return hard + (soft - soft.detach())  # forward: exactly 0 / 1 (x - x = 0); backward: the relaxed gradient


def keep_masks(masks: Tensor, keep: Tensor) -> Tensor:
    """Alpha masks [B, K, 1, H, W] (softmax over slots) with the dropped slots' removed and the rest renormalised
    over the kept slots; keep [B, K]."""
    kept = masks * keep.to(masks.dtype).view(*keep.shape, *([1] * (masks.dim() - 2)))
    return kept / (kept.sum(1, keepdim=True) + MASK_EPS)
