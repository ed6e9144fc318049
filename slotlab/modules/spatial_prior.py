"""A spatial prior in Slot Attention's logits (not in the paper): from the second iteration on, each slot's logits
are raised near where its previous attention lay, by ``weight`` x the log-density of an isotropic Gaussian fitted to
that attention (its weighted mean position and spread):

    logits[b, k, n] += weight * (-||p_n - mu_k||^2 / (2 s_k^2) - log s_k^2)

with ``p_n`` the inputs' positions, ``mu_k`` and ``s_k^2`` (per coordinate) the previous attention's weighted mean
and variance over the inputs. The softmax over the slots makes the prior a mixture of Gaussians in the image
plane beside the features' dot products: a slot spread over two far-apart objects of one colour has a large spread
and a low density at both, so a slot nearer to one of them takes it. Multi-dSprites' remaining loss after
``attention_masks`` is such colour grouping (docs/results.md). Scale-free: an affine change of the positions
changes ``log s_k^2`` by the same constant for every slot, which the softmax over the slots ignores.
"""

from __future__ import annotations

import torch
from torch import Tensor

VAR_FLOOR = 1e-4  # of the per-coordinate variance, in units of the positions squared (a slot on one input)


def gaussian_prior(attn: Tensor, positions: Tensor, weight: float) -> Tensor:
    """attn [B, K, N] (softmax over the slots, the previous iteration's), positions [N, 2] -> [B, K, N] fp32:
    ``weight`` x the log-density (up to a constant) of each slot's Gaussian at each input."""
    a = attn.float()
    pos = positions.to(device=a.device, dtype=torch.float32)  # [N, 2]
    w = a / (a.sum(dim=-1, keepdim=True) + 1e-8)  # [B, K, N] weights over the inputs
    mu = w @ pos  # [B, K, 2]
    d2 = (pos.pow(2).sum(-1)[None, None] - 2 * mu @ pos.T + mu.pow(2).sum(-1, keepdim=True)).clamp_min(0)  # [B, K, N]
    var = (w * d2).sum(dim=-1, keepdim=True) / pos.shape[-1] + VAR_FLOOR  # [B, K, 1] per coordinate
    return weight * (-d2 / (2 * var) - torch.log(var))  # [B, K, N]


def check_positions(positions: Tensor | None, n: int) -> Tensor:
    """The inputs' positions [N, 2] a spatial prior needs, else ValueError."""
    if positions is None or positions.dim() != 2 or positions.shape != (n, 2):
        got = None if positions is None else tuple(positions.shape)
        raise ValueError(f"spatial_prior needs the inputs' positions [{n}, 2], got {got}")
    return positions


__all__ = ["VAR_FLOOR", "check_positions", "gaussian_prior"]
