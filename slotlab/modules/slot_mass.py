"""A concave price on each slot's share of the image: a training penalty against objects split over slots (not in
the paper).

The decoder's alpha masks (Slot Attention, Section 2.2) sum to 1 over the slots at every pixel, so the mean of a
slot's mask over the pixels is its share of the image, m_k, and the shares sum to 1. The price is
``sum_k sqrt(m_k + eps)``: the square root is concave, so an object held by one slot (share m) costs sqrt(m)
while the same object split over two slots (m/2 each, soft or hard) costs 2 sqrt(m/2) = 1.41 sqrt(m). Unlike the
masks' per-pixel entropy (:mod:`slotlab.modules.mask_entropy`), which a split that gives each pixel to one of two
slots does not pay, this price is paid by any split, and its gradient moves pixels from the slot with the smaller
share to the one with the larger. It also favours fewer, larger slots in general (one slot for everything costs
least), so it is meant for a model whose slots already hold objects: at initialisation, when every slot holds an
equal share, it pulls towards one slot taking all. slotlab's option ``model.slot_mass_penalty`` (null: the
paper's loss) is its weight.
"""

from __future__ import annotations

from torch import Tensor

# Added to each share inside the square root: a finite gradient (at most 1 / (2 sqrt(eps)) ~ 16) for empty slots.
EPS = 1e-3


def slot_mass_price(masks: Tensor, slot_dim: int = 1) -> Tensor:
    """``sum_k sqrt(m_k + EPS)`` averaged over the batch (and frames), where m_k is the mean of ``masks`` over the
    pixels, computed in fp32. Image models: masks [B, K, 1, H, W] (``slot_dim=1``); video [B, T, K, H, W]
    (``slot_dim=2``: one share per slot and frame)."""
    m = masks.float()
    shares = m.flatten(slot_dim + 1).mean(-1)  # [B, K] or [B, T, K]: each slot's share of the frame
    return (shares + EPS).sqrt().sum(-1).mean()
