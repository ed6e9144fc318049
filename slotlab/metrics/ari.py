"""Adjusted Rand Index over pixels, foreground-only (FG-ARI), with DeepMind ``segmentation_metrics`` semantics.

Used for object discovery (paper Section 4.1, Table 1) and for the attention masks of set prediction (4.2).
Predicted masks are turned into labels by argmax over slots (first index on ties); background pixels
(true label 0) are ignored, and n counts the foreground pixels only. Vectorised over the batch: one
contingency table per image from one-hot matmuls, no Python loop over images, pixels or slots.

Undefined cases (``undefined=``): where the ARI's denominator is zero (fewer than two foreground pixels; one
true object kept in one predicted segment; every pixel its own cluster in both) the ARI is 0 / 0.

- ``"nan"`` (default, DeepMind's ``adjusted_rand_index``): NaN there, except 1.0 where every pixel,
  background included, has one true group id and one predicted id. As in DeepMind's code the true group id of a
  background pixel (an all-zero one-hot row once the background channel is dropped) is 0, the id of the first
  foreground channel (label 1). Means over images skip the NaN images and say how many were skipped
  (:func:`nan_summary`).
- ``"one"`` (scikit-learn's ``adjusted_rand_score`` convention): 1.0 wherever the denominator is zero.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from slotlab.checks import InputDtypeError, InputShapeError, as_tensor, require_finite, require_nonempty

Undefined = Literal["nan", "one"]


def _labels(pred_masks: Tensor) -> Tensor:
    if pred_masks.dim() == 4:  # [B, K, H, W] scores
        return pred_masks.argmax(dim=1)
    if pred_masks.dim() == 5 and pred_masks.shape[2] == 1:  # [B, K, 1, H, W] decoder masks
        return pred_masks[:, :, 0].argmax(dim=1)
    if pred_masks.dim() == 3 and not pred_masks.is_floating_point():  # [B, H, W] labels
        return pred_masks
    raise InputShapeError(
        "pred_masks must be [B, K, H, W] scores or int [B, H, W] labels, "
        f"got {pred_masks.dtype} {tuple(pred_masks.shape)}"
    )


def _all_equal(labels: Tensor) -> Tensor:
    return (labels == labels[:, :1]).all(dim=1)  # [B]


def ari(
    true_labels: Tensor,
    pred_labels: Tensor,
    ignore: Tensor | None = None,
    undefined: Undefined = "nan",
    single_cluster: Tensor | None = None,
) -> Tensor:
    """ARI per row of int labels [B, N] (any non-negative ids); pixels where ``ignore`` [B, N] is True are dropped.

    ``undefined``: what a zero denominator gives (see the module docstring). With ``"nan"``, rows where
    ``single_cluster`` [B] is True score 1.0; by default those where all kept true labels are equal and all kept
    predicted labels are equal.
    """
    if undefined not in ("nan", "one"):
        raise ValueError(f"undefined must be 'nan' or 'one', got {undefined!r}")
    if true_labels.shape != pred_labels.shape or true_labels.dim() != 2:
        raise ValueError(f"labels must both be [B, N], got {tuple(true_labels.shape)} and {tuple(pred_labels.shape)}")
    true_labels = true_labels.long()
    pred_labels = pred_labels.long()
    if (true_labels < 0).any() or (pred_labels < 0).any():
        raise ValueError("labels must be >= 0")
    b = true_labels.shape[0]
    gt = int(true_labels.max()) + 1 if true_labels.numel() else 1
    gp = int(pred_labels.max()) + 1 if pred_labels.numel() else 1
    keep = torch.ones_like(true_labels, dtype=torch.bool) if ignore is None else ~ignore
    # Contingency table n_ij per image via scatter-add of the pair index i * gp + j: [B, gt * gp].
    pair = true_labels * gp + pred_labels  # [B, N]
    table = torch.zeros(b, gt * gp, dtype=torch.float64, device=true_labels.device)
    table.scatter_add_(1, pair, keep.to(torch.float64))
    table = table.view(b, gt, gp)  # [B, Gt, Gp]
    a = table.sum(dim=2)  # [B, Gt]
    c = table.sum(dim=1)  # [B, Gp]
    n = a.sum(dim=1)  # [B]

    def comb2(x: Tensor) -> Tensor:
        return x * (x - 1) / 2

    index = comb2(table).sum(dim=(1, 2))
    sum_a = comb2(a).sum(dim=1)
    sum_c = comb2(c).sum(dim=1)
    pairs = comb2(n)
    expected = torch.where(pairs > 0, sum_a * sum_c / pairs.clamp(min=1), torch.zeros_like(pairs))
    max_index = (sum_a + sum_c) / 2
    denom = max_index - expected
    degenerate = denom.abs() < 1e-12
    score = (index - expected) / torch.where(degenerate, torch.ones_like(denom), denom)
    if undefined == "one":
        return torch.where(degenerate, torch.ones_like(score), score)  # [B]
    if single_cluster is None:
        big = torch.iinfo(torch.long).max
        t_kept = torch.where(keep, true_labels, true_labels.new_full((), -1))
        p_kept = torch.where(keep, pred_labels, pred_labels.new_full((), -1))
        t_min = torch.where(keep, true_labels, true_labels.new_full((), big)).amin(dim=1, keepdim=True)
        p_min = torch.where(keep, pred_labels, pred_labels.new_full((), big)).amin(dim=1, keepdim=True)
        single_cluster = ((t_kept == t_min) | ~keep).all(dim=1) & ((p_kept == p_min) | ~keep).all(dim=1)
    score = torch.where(degenerate, torch.full_like(score, float("nan")), score)
    return torch.where(single_cluster.to(score.device), torch.ones_like(score), score)  # [B]


def fg_ari(true_masks: Tensor | np.ndarray, pred_masks: Tensor | np.ndarray, undefined: Undefined = "nan") -> Tensor:
    """Foreground ARI per image.

    Args:
        true_masks: int [B, H, W] instance labels, 0 = background (ignored).
        pred_masks: [B, K, H, W] scores (argmax over K; [B, K, 1, H, W] decoder masks are accepted too)
            or int [B, H, W] labels.
        undefined: ``"nan"`` (DeepMind, default) or ``"one"`` (scikit-learn) where the ARI is 0 / 0.
    Both may be tensors or numpy arrays (any float dtype for the scores).
    Returns:
        float64 [B] scores (NaN where undefined, with ``"nan"``); empty for an empty batch (B = 0).
    Raises:
        NonFiniteInputError: ``pred_masks`` holds NaN or Inf (a diverged model): there is no score to give.
        InputTypeError / InputDtypeError / InputShapeError: inputs that are not of the kinds above.
    """
    true_masks = as_tensor(true_masks, "true_masks", "of int [B, H, W] instance labels")
    pred_masks = as_tensor(pred_masks, "pred_masks", "of [B, K, H, W] scores or int [B, H, W] labels")
    if true_masks.is_floating_point() or true_masks.is_complex():
        raise InputDtypeError(
            f"true_masks must be int [B, H, W] instance labels, got {true_masks.dtype}; pass true_masks.long()"
        )
    if true_masks.dim() != 3:
        raise InputShapeError(f"true_masks must be int [B, H, W], got {true_masks.dtype} {tuple(true_masks.shape)}")
    if pred_masks.is_floating_point():
        require_finite(pred_masks, "pred_masks")
    labels = _labels(pred_masks)
    if labels.shape != true_masks.shape:
        raise InputShapeError(
            f"pred_masks give labels {tuple(labels.shape)} but true_masks is {tuple(true_masks.shape)}"
        )
    if true_masks.shape[0] == 0:
        return torch.empty(0, dtype=torch.float64, device=true_masks.device)  # no images, no scores
    require_nonempty(true_masks, "true_masks", "[B, H, W]", (1, 2))
    t = true_masks.reshape(true_masks.shape[0], -1).long()
    p = labels.reshape(labels.shape[0], -1).long()
    # DeepMind's special case: true group ids over all pixels, background = id of label 1 (argmax of a zero row).
    single = _all_equal((t - 1).clamp(min=0)) & _all_equal(p)
    return ari(t, p, ignore=t == 0, undefined=undefined, single_cluster=single)


def nan_summary(scores: np.ndarray | Tensor, prefix: str = "fg_ari") -> dict[str, float | int]:
    """Mean, std, median over the defined (non-NaN) scores, and how many images were undefined (skipped)."""
    x = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64).reshape(-1)
    ok = x[~np.isnan(x)]
    nan = float("nan")
    return {
        f"{prefix}_mean": float(ok.mean()) if len(ok) else nan,
        f"{prefix}_std": float(ok.std()) if len(ok) else nan,
        f"{prefix}_median": float(np.median(ok)) if len(ok) else nan,
        f"{prefix}_undefined": int(len(x) - len(ok)),
        "num_images": int(len(x)),
    }


def undefined_note(count: int) -> str:
    """' (N images where the ARI is undefined skipped)' for a CLI line, '' when none were."""
    return f" ({count} image{'s' if count != 1 else ''} with undefined ARI skipped)" if count else ""


def layout_ari(pred_masks: Tensor) -> Tensor:
    """Mean ARI between the segmentations (argmax over slots, all pixels) of images i and i+1: pred_masks
    [B, K, H, W] or [B, K, 1, H, W]. Near 1 when a model cuts every image into the same regions whatever it shows
    (e.g. stripes: a failed seed, :mod:`slotlab.train.failed_seed`); NaN for fewer than two images."""
    if pred_masks.dim() == 5:
        pred_masks = pred_masks[:, :, 0]
    labels = pred_masks.argmax(dim=1).flatten(1)  # [B, H*W]
    if labels.shape[0] < 2:
        return torch.tensor(float("nan"))
    return ari(labels, labels.roll(1, dims=0), undefined="one").mean()
