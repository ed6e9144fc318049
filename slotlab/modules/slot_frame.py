"""Slot-centric reference frames for the spatial broadcast decoder (Invariant Slot Attention, Biza et al. 2023).

Not in the Slot Attention paper: an option (``model.decoder_frame``). Each slot gets a position (the centre of
mass of its attention over the input grid) and a scale (the attention-weighted spread around that centre),
computed as in ISA's ``SlotAttentionTranslScaleEquiv``:

    w = attn / sum_N attn                       # [B, K, N] the attention as weights over inputs
    position = w @ grid                         # [B, K, 2] in [-1, 1]
    scale = sqrt(sum_N (w + eps) * (grid - position)**2), clipped to [0.001, 2]

The decoder then broadcasts each slot over a grid *relative* to its frame, ``(grid - position) / (5 * scale)``
(ISA's ``RelativePositionEmbedding`` with ``scales_factor = 5``) instead of the absolute grid, so that the
decoder draws an object's shape in the object's own frame, wherever and however large the object is.

Deviation from ISA, named: the frame comes from the attention of Slot Attention's last iteration (ISA runs one
extra attention round with the final slots), and Slot Attention's keys keep the absolute position embedding
(ISA also makes the keys relative, at K times the key cost); only the decoder's frame changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

FRAMES = ("absolute", "translation", "translation_scale")
SCALES_FACTOR = 5.0  # ISA's scales_factor: relative coordinates are divided by 5 * scale
MIN_SCALE, MAX_SCALE = 0.001, 2.0  # ISA's clip of the slot scales
EPS = 1e-8


def centred_grid(height: int, width: int) -> Tensor:
    """The (y, x) coordinate grid in [-1, 1]: [H*W, 2], row-major like the flattened encoder map."""
    ys = torch.linspace(-1.0, 1.0, height)
    xs = torch.linspace(-1.0, 1.0, width)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([y, x], dim=-1).reshape(height * width, 2)  # [N, 2]


def slot_frames(attn: Tensor, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Positions and scales of the slots from their attention ``attn`` [B, K, N] over inputs at ``grid`` [N, 2].

    Returns (positions [B, K, 2], scales [B, K, 2]), fp32 (float64 for float64 attention).
    """
    attn = attn.to(torch.promote_types(attn.dtype, torch.float32))
    grid = grid.to(attn.device, attn.dtype)
    w = attn / attn.sum(dim=-1, keepdim=True).clamp_min(EPS)  # [B, K, N]
    positions = w @ grid  # [B, K, 2]
    spread = (grid[None, None] - positions[:, :, None]).square()  # [B, K, N, 2]
    var = torch.einsum("bkn,bknc->bkc", w + EPS, spread)  # [B, K, 2]
    scales = var.clamp_min(0.0).sqrt().clamp(MIN_SCALE, MAX_SCALE)  # [B, K, 2]
    return positions, scales


def relative_grid(grid: Tensor, positions: Tensor, scales: Tensor | None) -> Tensor:
    """``(grid - position) / (5 * scale)`` per slot: grid [N, 2], positions/scales [BK, 2] -> [BK, N, 2].

    ``scales`` None: translation only, ``grid - position``.
    """
    rel = grid[None] - positions[:, None]  # [BK, N, 2]
    if scales is not None:
        rel = rel / (SCALES_FACTOR * scales[:, None])
    return rel
