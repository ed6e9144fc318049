"""Video segmentation metrics (SAVi, Kipf et al. 2022): video FG-ARI, mean best overlap (mBO), per-frame FG-ARI.

Video scores treat a clip as one clustering: the pixels of all its frames (or all but the first, ``skip_first``)
are scored together, so a slot that switches objects between frames costs. Ground-truth id 0 is background.

- FG-ARI (:func:`video_fg_ari`): ARI over the foreground pixels (true id != 0) of all scored frames, the SAVi
  code's ``Ari`` with ``ignore_background``. ``undefined``: what a zero denominator gives (fewer than two foreground
  pixels, one object kept in one slot, every pixel its own cluster): ``"one"`` (default: SAVi's metric and
  scikit-learn's ``adjusted_rand_score``) or ``"nan"`` (NaN there, except 1.0 where the foreground is one object
  kept in one segment; a clip or frame without foreground pixels is NaN).
- mBO (:func:`video_mbo`): for each ground-truth object present in the scored frames, the best IoU over the predicted
  segments, both taken as space-time masks over the whole clip (predicted segments include the pixels they take on
  the background); the mean over the objects of a clip (NaN for a clip without objects).
- Per-frame FG-ARI (:func:`per_frame_fg_ari`): each frame scored on its own, a diagnostic (blind to identity
  switches).

Predictions are [B, T, K, H, W] scores (argmax over K; the first index on ties), [B, T, K, 1, H, W] decoder masks,
or int [B, T, H, W] labels. Vectorised over the batch: one contingency table per clip by a scatter-add.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from slotlab.checks import InputDtypeError, InputShapeError, as_tensor, require_finite, require_nonempty
from slotlab.metrics.ari import Undefined, ari

TRUE_KINDS = "of int [B, T, H, W] instance labels (0 = background)"
PRED_KINDS = "of [B, T, K, H, W] scores, [B, T, K, 1, H, W] masks or int [B, T, H, W] labels"


def _inputs(true_masks: Tensor | np.ndarray, pred_masks: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    """Checked (true ids, predicted ids), both long [B, T, H, W]."""
    true = as_tensor(true_masks, "true_masks", TRUE_KINDS)
    pred = as_tensor(pred_masks, "pred_masks", PRED_KINDS)
    if true.is_floating_point() or true.is_complex() or true.dtype == torch.bool:
        raise InputDtypeError(f"true_masks must be int [B, T, H, W] instance labels, got {true.dtype}")
    if true.dim() != 4:
        raise InputShapeError(f"true_masks must be int [B, T, H, W], got {true.dtype} {tuple(true.shape)}")
    if pred.is_floating_point():
        require_finite(pred, "pred_masks")
        if pred.dim() == 6 and pred.shape[3] == 1:  # [B, T, K, 1, H, W]
            pred = pred[:, :, :, 0]
        if pred.dim() != 5:
            raise InputShapeError(f"pred_masks must be [B, T, K, H, W] scores, got {tuple(pred.shape)}")
        labels = pred.argmax(dim=2)  # [B, T, H, W]
    elif pred.dim() == 4 and not pred.is_complex() and pred.dtype != torch.bool:
        labels = pred
    else:
        raise InputShapeError(f"pred_masks must be float [B, T, K, H, W] scores or int [B, T, H, W] labels, "
                              f"got {pred.dtype} {tuple(pred.shape)}")  # fmt: skip
    if labels.shape != true.shape:
        raise InputShapeError(f"pred_masks give labels {tuple(labels.shape)} but true_masks is {tuple(true.shape)}")
    if true.shape[0]:
        require_nonempty(true, "true_masks", "[B, T, H, W]", (1, 2, 3))
    if true.numel() and (int(true.min()) < 0 or int(labels.min()) < 0):
        raise InputShapeError("true_masks and pred_masks labels must be >= 0")
    return true.long(), labels.to(true.device).long()


def _frames(true: Tensor, labels: Tensor, skip_first: bool) -> tuple[Tensor, Tensor]:
    """The scored frames, flattened per clip: [B, T' * H * W] each."""
    if skip_first:
        if true.shape[1] < 2:
            raise InputShapeError(f"skip_first needs clips of T >= 2 frames, got T = {true.shape[1]}")
        true, labels = true[:, 1:], labels[:, 1:]
    return true.flatten(1), labels.flatten(1)


def _fg_ari(t: Tensor, p: Tensor, undefined: Undefined) -> Tensor:
    """FG-ARI per row of [R, N] ids. With ``"nan"``: 1.0 where the foreground is one object in one segment, NaN
    where the ARI is otherwise undefined, including rows without any foreground pixel."""
    fg = t != 0  # [R, N]
    score = ari(t, p, ignore=~fg, undefined=undefined)  # [R]
    if undefined == "nan":
        score = torch.where(fg.any(dim=1), score, torch.full_like(score, float("nan")))
    return score


def video_fg_ari(
    true_masks: Tensor | np.ndarray,
    pred_masks: Tensor | np.ndarray,
    skip_first: bool = False,
    undefined: Undefined = "one",
) -> Tensor:
    """FG-ARI per clip over all (or all but the first) frames at once: float64 [B]."""
    true, labels = _inputs(true_masks, pred_masks)
    if true.shape[0] == 0:
        return torch.empty(0, dtype=torch.float64, device=true.device)
    t, p = _frames(true, labels, skip_first)  # [B, N]
    return _fg_ari(t, p, undefined)  # [B]


def per_frame_fg_ari(
    true_masks: Tensor | np.ndarray, pred_masks: Tensor | np.ndarray, undefined: Undefined = "one"
) -> Tensor:
    """FG-ARI of each frame on its own: float64 [B, T] (a frame without foreground pixels is undefined)."""
    true, labels = _inputs(true_masks, pred_masks)
    b, t = true.shape[:2]
    if b == 0:
        return torch.empty(0, t, dtype=torch.float64, device=true.device)
    flat_t, flat_p = true.flatten(2).flatten(0, 1), labels.flatten(2).flatten(0, 1)  # [B * T, H * W]
    return _fg_ari(flat_t, flat_p, undefined).view(b, t)


def video_mbo(true_masks: Tensor | np.ndarray, pred_masks: Tensor | np.ndarray, skip_first: bool = False) -> Tensor:
    """Mean best overlap per clip (space-time IoU over all scored frames): float64 [B], NaN without objects."""
    true, labels = _inputs(true_masks, pred_masks)
    b = true.shape[0]
    if b == 0:
        return torch.empty(0, dtype=torch.float64, device=true.device)
    t, p = _frames(true, labels, skip_first)  # [B, N]
    gt, gp = int(t.max()) + 1, int(p.max()) + 1
    table = torch.zeros(b, gt * gp, dtype=torch.float64, device=t.device)
    table.scatter_add_(1, t * gp + p, torch.ones_like(t, dtype=torch.float64))
    table = table.view(b, gt, gp)  # [B, Gt, Gp] pixel counts, background row 0 included
    inter = table[:, 1:]  # [B, Gt - 1, Gp]
    area_true = inter.sum(dim=2)  # [B, Gt - 1]
    area_pred = table.sum(dim=1)  # [B, Gp]
    union = area_true[:, :, None] + area_pred[:, None, :] - inter  # [B, Gt - 1, Gp]
    best = (inter / union.clamp(min=1)).amax(dim=2)  # [B, Gt - 1]
    present = area_true > 0  # objects with at least one pixel in the scored frames
    count = present.sum(dim=1)  # [B]
    total = torch.where(present, best, torch.zeros_like(best)).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))  # [B]


def video_metrics(
    true_masks: Tensor | np.ndarray, pred_masks: Tensor | np.ndarray, undefined: Undefined = "one"
) -> dict[str, Tensor]:
    """Every video score of a batch, named: ``fg_ari_video``, ``fg_ari_video_skip_first``, ``mbo_video``,
    ``mbo_video_skip_first`` (float64 [B]; the ``skip_first`` ones only for clips of T >= 2 frames) and
    ``fg_ari_per_frame`` (float64 [B, T])."""
    true, labels = _inputs(true_masks, pred_masks)  # checked once; the labels go on as int labels
    out = {
        "fg_ari_video": video_fg_ari(true, labels, undefined=undefined),
        "mbo_video": video_mbo(true, labels),
        "fg_ari_per_frame": per_frame_fg_ari(true, labels, undefined=undefined),
    }
    if true.shape[1] >= 2:
        out["fg_ari_video_skip_first"] = video_fg_ari(true, labels, skip_first=True, undefined=undefined)
        out["mbo_video_skip_first"] = video_mbo(true, labels, skip_first=True)
    return out
