"""Average Precision for CLEVR set prediction (Slot Attention paper, Section 4.2 / Table 1).

Implements the object-level AP of the reference code (google-research ``slot_attention/utils.py``,
``average_precision_clevr``) together with the 19-dim per-object encoding used by the set-prediction
model (paper Section 2.3 and Appendix):

    dims 0:3    coordinates, (3d_coords + 3) / 6, in [0, 1]
    dims 3:5    size one-hot        (small, large)
    dims 5:7    material one-hot    (rubber, metal)
    dims 7:10   shape one-hot       (cube, sphere, cylinder)
    dims 10:18  colour one-hot      (gray, blue, brown, yellow, red, green, purple, cyan)
    dim 18      real-object flag (targets, zero rows are padding) / presence confidence (predictions)

Metric semantics (reproducing the reference):

* all predicted slots of all images are ranked by confidence (dim 18), highest first;
* for each prediction, among the *real* targets of its own image whose argmax size, material, shape and
  colour all equal the prediction's argmaxes, the closest one (Euclidean distance of the de-normalised
  coordinates, i.e. ``||(c_pred - c_target) * 6||``) is selected -- already-matched targets are NOT
  skipped here (this is what the reference does);
* the prediction is a true positive iff such a target exists, the distance is ``< threshold`` (or the
  threshold is ``-1`` / ``inf``) and that target has not been claimed by a higher-ranked prediction; the
  target is then marked as detected. Otherwise it is a false positive;
* precision / recall along the ranked list (recall denominator = sum of the target flags) and VOC
  all-point interpolated AP (monotone precision envelope, summed over recall changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from slotlab.checks import InputDtypeError, InputShapeError, require_finite

__all__ = [
    "COORDS",
    "SIZE",
    "MATERIAL",
    "SHAPE",
    "COLOR",
    "FLAG",
    "FEATURE_DIM",
    "SIZES",
    "MATERIALS",
    "SHAPES",
    "COLORS",
    "PAPER_THRESHOLDS",
    "encode_object",
    "encode_objects",
    "decode_attributes",
    "average_precision",
    "average_precision_table",
    "compute_average_precision",
]

# Slices of the 19-dim object encoding.
COORDS = slice(0, 3)
SIZE = slice(3, 5)
MATERIAL = slice(5, 7)
SHAPE = slice(7, 10)
COLOR = slice(10, 18)
FLAG = 18
FEATURE_DIM = 19

# Class orders of the one-hot groups.
SIZES: tuple[str, ...] = ("small", "large")
MATERIALS: tuple[str, ...] = ("rubber", "metal")
SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")
COLORS: tuple[str, ...] = ("gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan")

# Distance thresholds of the paper (-1 means "no threshold", reported as infinity).
PAPER_THRESHOLDS: tuple[float, ...] = (-1.0, 1.0, 0.5, 0.25, 0.125)

_ATTRIBUTE_GROUPS = ((SIZE, SIZES), (MATERIAL, MATERIALS), (SHAPE, SHAPES), (COLOR, COLORS))


def _class_index(value: int | str, names: Sequence[str], what: str) -> int:
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; expected one of {list(names)}")
        return names.index(value)
    index = int(value)
    if not 0 <= index < len(names):
        raise ValueError(f"{what} index {index} out of range [0, {len(names)})")
    return index


def encode_object(
    coords_3d: Sequence[float],
    size: int | str,
    material: int | str,
    shape: int | str,
    color: int | str,
    real: float = 1.0,
) -> np.ndarray:
    """Encode one CLEVR object as the 19-dim target vector (float32, shape [19]).

    ``coords_3d`` are the raw CLEVR ``3d_coords`` (roughly in [-3, 3]); categorical attributes are given
    as class names or indices in the orders of ``SIZES``, ``MATERIALS``, ``SHAPES`` and ``COLORS``.
    """
    coords = np.asarray(coords_3d, dtype=np.float64)
    if coords.shape != (3,):
        raise ValueError(f"coords_3d must have shape (3,), got {coords.shape}")
    out = np.zeros(FEATURE_DIM, dtype=np.float32)
    out[COORDS] = (coords + 3.0) / 6.0
    for (group, names), value, what in zip(
        _ATTRIBUTE_GROUPS, (size, material, shape, color), ("size", "material", "shape", "color"), strict=True
    ):
        out[group.start + _class_index(value, names, what)] = 1.0
    out[FLAG] = real
    return out


def encode_objects(objects: Iterable[Mapping[str, Any]], num_slots: int) -> np.ndarray:
    """Encode a scene (CLEVR-style dicts with keys ``3d_coords``, ``size``, ``material``, ``shape``,
    ``color``) into a zero-padded target array of shape [num_slots, 19] (float32)."""
    rows = [encode_object(o["3d_coords"], o["size"], o["material"], o["shape"], o["color"]) for o in objects]
    if len(rows) > num_slots:
        raise ValueError(f"scene has {len(rows)} objects but num_slots={num_slots}")
    out = np.zeros((num_slots, FEATURE_DIM), dtype=np.float32)
    if rows:
        out[: len(rows)] = np.stack(rows)
    return out


def _to_numpy(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype in (torch.bfloat16, torch.float16) else x).numpy()
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != FEATURE_DIM:
        raise InputShapeError(f"{name} must have shape [B, K, {FEATURE_DIM}], got {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
        raise InputDtypeError(f"{name} must hold numbers [B, K, {FEATURE_DIM}], got {x.dtype}")
    require_finite(x, name)  # NaN confidences or coordinates (a diverged model) have no rank: no AP to give
    return x


def decode_attributes(x: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Decode encodings of shape [..., 19] into arrays of shape [...]: ``coords_3d`` (shape [..., 3],
    de-normalised), class indices ``size``, ``material``, ``shape``, ``color`` (argmax, first index on
    ties) and the raw ``flag``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.shape[-1] != FEATURE_DIM:
        raise ValueError(f"last dimension must be {FEATURE_DIM}, got shape {tuple(x.shape)}")
    return {
        "coords_3d": x[..., COORDS] * 6.0 - 3.0,
        "size": np.argmax(x[..., SIZE], axis=-1),
        "material": np.argmax(x[..., MATERIAL], axis=-1),
        "shape": np.argmax(x[..., SHAPE], axis=-1),
        "color": np.argmax(x[..., COLOR], axis=-1),
        "flag": x[..., FLAG],
    }


def compute_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC all-point interpolated AP from precision / recall arrays along a ranked list (shape [N])."""
    p = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    # Monotone (non-increasing from the right) precision envelope.
    p = np.maximum.accumulate(p[::-1])[::-1]
    changed = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum(p[changed + 1] * (r[changed + 1] - r[changed])))


def _is_unlimited(threshold: float) -> bool:
    return threshold == -1 or np.isposinf(threshold)


def average_precision(
    pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, distance_threshold: float
) -> float:
    """Object-level AP of CLEVR set predictions (reference ``average_precision_clevr`` semantics).

    Args:
        pred: predictions [B, K, 19]; dim 18 is the presence confidence used for ranking.
        target: targets [B, M, 19], zero-padded; dim 18 is the real-object flag.
        distance_threshold: maximal (strict) Euclidean distance in the original CLEVR coordinate scale;
            ``-1`` or ``inf`` means no distance constraint.

    Returns:
        The AP as a Python float. Ties in confidence are broken by the flat (image, slot) order.
    Raises:
        NonFiniteInputError: ``pred`` or ``target`` holds NaN or Inf (a diverged model): there is no AP to give.
    """
    p = _to_numpy(pred, "pred").astype(np.float64)  # [B, K, 19]
    t = _to_numpy(target, "target").astype(np.float64)  # [B, M, 19]
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"batch sizes differ: pred {tuple(p.shape)} vs target {tuple(t.shape)}")
    distance_threshold = float(distance_threshold)
    if not _is_unlimited(distance_threshold) and not distance_threshold > 0:
        raise ValueError(f"distance_threshold must be positive, -1 or inf, got {distance_threshold}")
    num_real = float(t[..., FLAG].sum())
    if num_real <= 0:
        raise ValueError("target contains no real objects (flag dim 18 is zero everywhere); AP is undefined")
    batch, k, _ = p.shape

    pa = decode_attributes(p)
    ta = decode_attributes(t)
    # Attribute agreement between every prediction and every target of the same image.
    same = np.ones((batch, k, t.shape[1]), dtype=bool)  # [B, K, M]
    for name in ("size", "material", "shape", "color"):
        same &= pa[name][:, :, None] == ta[name][:, None, :]
    same &= (t[..., FLAG] != 0)[:, None, :]
    diff = p[:, :, None, COORDS] - t[:, None, :, COORDS]  # [B, K, M, 3]
    dist = np.linalg.norm(diff * 6.0, axis=-1)  # [B, K, M]
    dist = np.where(same, dist, np.inf)
    best_id = np.argmin(dist, axis=-1)  # [B, K] closest attribute-matching real target (first on ties)
    best_dist = np.take_along_axis(dist, best_id[..., None], axis=-1)[..., 0]  # [B, K]
    has_match = np.isfinite(best_dist)
    if _is_unlimited(distance_threshold):
        valid = has_match
    else:
        valid = has_match & (best_dist < distance_threshold)

    # Rank all predicted slots by confidence, highest first (stable: ties keep flat order).
    order = np.argsort(-p[..., FLAG].reshape(-1), kind="stable")  # [B*K]
    valid_sorted = valid.reshape(-1)[order]
    image_sorted = order // k
    key_sorted = image_sorted * t.shape[1] + best_id.reshape(-1)[order]  # (image, target) identifier
    # A valid prediction is a TP iff it is the first valid one (in ranked order) claiming its target.
    tp = np.zeros(order.shape[0], dtype=np.float64)
    valid_pos = np.nonzero(valid_sorted)[0]
    _, first = np.unique(key_sorted[valid_pos], return_index=True)
    tp[valid_pos[first]] = 1.0
    fp = 1.0 - tp

    acc_tp = np.cumsum(tp)
    acc_fp = np.cumsum(fp)
    recall = acc_tp / num_real
    precision = acc_tp / (acc_tp + acc_fp)
    return compute_average_precision(precision, recall)


def average_precision_table(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    thresholds: Sequence[float] = PAPER_THRESHOLDS,
) -> dict[float, float]:
    """AP at several distance thresholds (default: the paper's ``-1`` (= inf), 1, 0.5, 0.25, 0.125).

    Returns a dict mapping each threshold (as given, e.g. ``-1.0``) to its AP.
    """
    return {float(th): average_precision(pred, target, th) for th in thresholds}
