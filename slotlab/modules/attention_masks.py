"""Masks that follow the inputs: the decoder's alpha logits plus a weight times the log of Slot Attention's attention.

Not in Slot Attention or SAVi (``model.attention_masks``, default off). A broadcast decoder draws each slot's mask from
the slot alone, so early in training its masks are round blobs placed by position, and where two objects touch the
boundary between their masks is a straight cut, whatever the objects look like. The attention of the corrector is
computed per input from the inputs' features (colour included), so it can follow an object's outline. Mixing with
``softmax_K(alpha_logits + w * log attn)`` gives masks that do, and, since the reconstruction then depends on the
attention, the reconstruction error trains the attention directly (as MONet's attention network is trained by its
component VAEs' likelihood, Burgess et al. 2019). ``w = 0`` is the decoder's masks.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

ATTN_FLOOR = 1e-6  # attention below this counts as this (log of 0 is -inf)


def attention_logits(attn: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """log of the attention [N, K, h*w] on the inputs' grid (h, w), resized to ``size`` (H, W): [N, K, H, W] fp32.
    Nearest-neighbour resizing, so each pixel takes the attention of the input it lies in."""
    n, k, _ = attn.shape
    a = attn.float().reshape(n, k, *grid)  # [N, K, h, w]
    if tuple(grid) != tuple(size):
        a = F.interpolate(a, size=size, mode="nearest")  # [N, K, H, W]
    return a.clamp_min(ATTN_FLOOR).log()


def mix_with_attention(
    alpha_logits: Tensor, recons: Tensor, attn: Tensor, grid: tuple[int, int], weight: float
) -> tuple[Tensor, Tensor]:
    """alpha_logits [N, K, H, W], recons [N, K, C, H, W], attn [N, K, h*w] (softmax over K) ->
    (recon [N, C, H, W], masks [N, K, H, W]) with masks = softmax_K(alpha_logits + weight * log attn)."""
    logits = alpha_logits.float() + weight * attention_logits(attn, grid, tuple(alpha_logits.shape[-2:]))
    masks = logits.softmax(dim=1)  # [N, K, H, W]
    recon = (recons.float() * masks.unsqueeze(2)).sum(dim=1)  # [N, C, H, W]
    return recon, masks


__all__ = ["ATTN_FLOOR", "attention_logits", "mix_with_attention"]
