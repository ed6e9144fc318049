"""Slot Attention's last-iteration attention as masks, the masks the paper scores for set prediction (Section 4.2,
"attention masks", Figure 6) and slotlab's attention diagnostic for object discovery. One helper for both tasks:
set prediction scores them on the encoder's grid (true masks downsampled, as the paper), object discovery on the
image (attention upsampled nearest)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention_masks(attn: torch.Tensor, grid: tuple[int, int], size: tuple[int, int] | None = None) -> torch.Tensor:
    """``attn`` [B, T, K, N] (every iteration's attention over the N = h * w inputs of the encoder's ``grid``) ->
    the last iteration's maps [B, K, h, w] in float32, or [B, K, H, W] nearest-neighbour upsampled to ``size``
    where given and different from the grid."""
    b, _, k, n = attn.shape
    h, w = grid
    if h * w != n:
        raise ValueError(f"attention over {n} inputs does not fit the encoder grid {h}x{w}")
    maps = attn[:, -1].float().reshape(b, k, h, w)  # [B, K, h, w]
    if size is not None and (h, w) != tuple(size):
        maps = F.interpolate(maps, size=tuple(size), mode="nearest")  # [B, K, H, W]
    return maps
