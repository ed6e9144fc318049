"""Per-pixel entropy of the decoder's alpha masks: a training penalty against split objects (not in the paper).

The spatial broadcast decoder (Slot Attention, Section 2.2; SAVi's decoder per frame) normalises the slots' alpha
logits with a softmax over the slots, so two slots that hold the same object (a duplicate) can share its pixels
at no cost to the reconstruction: the mask of each is ~1/2 there, and the argmax that FG-ARI reads flips between
them pixel by pixel. The mean over pixels of the masks' entropy over the slots, ``-sum_k m_k log m_k``, is 0 where
one slot owns a pixel and log K where all share it equally; adding it (times a small weight) to the
reconstruction loss makes sharing a pixel cost something, so one of two duplicates has to take the object.
slotlab's option ``model.mask_entropy`` (null: the paper's loss) is that weight.
"""

from __future__ import annotations

from torch import Tensor

# Masks below this are clamped inside the log (only there): a zero mask (bf16 underflow) adds 0 to the entropy
# and a finite gradient, not 0 * inf.
_TINY = 1e-6


def mask_entropy(masks: Tensor, slot_dim: int = 1) -> Tensor:
    """The mean over every other dimension of the entropy over ``slot_dim`` of ``masks`` (non-negative, summing
    to 1 over the slots), in nats, computed in fp32. Image models: masks [B, K, 1, H, W]; video [B, T, K, H, W]
    with ``slot_dim=2``."""
    m = masks.float()
    return -(m * m.clamp_min(_TINY).log()).sum(slot_dim).mean()
