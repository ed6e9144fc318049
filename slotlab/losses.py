"""Set-prediction loss: Hungarian-matched Huber loss (Slot Attention paper, Section 2.3 / 4.2).

Reproduces ``hungarian_huber_loss`` of the reference code (google-research ``slot_attention/utils.py``):
the pairwise cost between every predicted slot and every target object is the Huber loss (delta 1)
averaged over the feature dimension; for each example the optimal one-to-one assignment is found with
``scipy.optimize.linear_sum_assignment`` on the detached cost, and the loss is the sum of the matched
costs, averaged over the batch. Gradients flow through the matched entries of the cost matrix only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = ["pairwise_huber_cost", "hungarian_match", "hungarian_huber_loss"]


def _check_sets(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.dim() != 3 or target.dim() != 3:
        raise ValueError(
            f"pred and target must have shape [B, K, D], got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape [B, K, D], got pred {tuple(pred.shape)} "
            f"and target {tuple(target.shape)}"
        )


def pairwise_huber_cost(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Pairwise Huber cost between sets.

    Args:
        pred: predictions [B, K, D].
        target: targets [B, K, D].
        delta: Huber delta (1 in the paper).

    Returns:
        cost [B, K, K] with ``cost[b, i, j] = mean_d huber(pred[b, i, d], target[b, j, d])``.
    """
    _check_sets(pred, target)
    p = pred.unsqueeze(2)  # [B, K, 1, D]
    t = target.unsqueeze(1).to(pred.dtype)  # [B, 1, K, D]
    p, t = torch.broadcast_tensors(p, t)  # [B, K, K, D]
    return F.huber_loss(p, t, reduction="none", delta=delta).mean(dim=-1)  # [B, K, K]


def hungarian_match(cost: torch.Tensor) -> torch.Tensor:
    """Minimum-cost one-to-one assignment per example.

    Args:
        cost: [B, K, K] cost matrices (rows: predictions, columns: targets); not differentiated.

    Returns:
        LongTensor [B, K] on ``cost.device``: ``match[b, i]`` is the column (target) assigned to row i.
    """
    if cost.dim() != 3 or cost.shape[1] != cost.shape[2]:
        raise ValueError(f"cost must have shape [B, K, K], got {tuple(cost.shape)}")
    cost_np = cost.detach().cpu().to(torch.float64).numpy()  # [B, K, K]
    batch, k, _ = cost_np.shape
    match = np.empty((batch, k), dtype=np.int64)  # [B, K]
    for b in range(batch):
        rows, cols = linear_sum_assignment(cost_np[b])
        match[b, rows] = cols
    return torch.from_numpy(match).to(cost.device)


def hungarian_huber_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Hungarian-matched Huber loss of the set-prediction model.

    Args:
        pred: predicted slot encodings [B, K, D] (D = 19 for CLEVR).
        target: zero-padded target encodings [B, K, D].

    Returns:
        Scalar tensor: matched pairwise costs summed over the K pairs, averaged over the batch.
    """
    cost = pairwise_huber_cost(pred, target)  # [B, K, K]
    match = hungarian_match(cost)  # [B, K]
    matched = torch.gather(cost, 2, match.unsqueeze(-1)).squeeze(-1)  # [B, K]
    return matched.sum(dim=1).mean()
