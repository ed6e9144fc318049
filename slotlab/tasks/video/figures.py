"""The video task's pictures: per frame, Frame | Ground truth (optional) | Reconstruction | Mask | Slot k (its
reconstruction times its alpha mask, with a border of the slot's colour), one row per video, as an animated GIF
(:class:`slotlab.drawing.Animation`) and as a still with one row per (video, frame). Slot k has the same colour in
every frame (SAVi's slots are indexed by identity), so a slot that switches objects shows as a colour that jumps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from slotlab.drawing import Animation, LabelledGrid
from slotlab.viz import discovery_rows, slot_colors, slot_columns, slot_legend


def truth_tile(mask: np.ndarray, scale: int) -> np.ndarray:
    """Instance ids [H, W] (0 = background, black) -> an RGB tile in [0, 1], one colour per id (the ids' colours
    are not the slots': ground truth and slots are not matched)."""
    ids = np.asarray(mask, dtype=np.int64)
    colors = np.concatenate([np.zeros((1, 3), np.float32), slot_colors(max(int(ids.max()), 1))[::-1]])
    tile = colors[ids]  # [H, W, 3]
    return tile.repeat(scale, 0).repeat(scale, 1)


def frame_rows(
    video: torch.Tensor,
    recon: torch.Tensor,
    masks: torch.Tensor,
    recons: torch.Tensor,
    t: int,
    scale: int,
    true_masks: torch.Tensor | None = None,
) -> list[list[np.ndarray]]:
    """The tiles of frame ``t``, one row per video. video, recon [B, T, 3, H, W] and recons [B, T, K, 3, H, W] in
    model units ([-1, 1]); masks [B, T, K, H, W]; true_masks int [B, T, H, W] or None."""
    rows = discovery_rows(video[:, t], recon[:, t], masks[:, t, :, None], recons[:, t], scale)
    if true_masks is None:
        return rows
    truth = true_masks[:, t].cpu().numpy()
    return [[row[0], truth_tile(truth[b], scale), *row[1:]] for b, row in enumerate(rows)]


def _columns(k: int, truth: bool, recon_title: str) -> list[str]:
    first = ["Frame", *(["Ground truth"] if truth else []), recon_title, "Mask"]
    return slot_columns(k, first)


def _legend(k: int, slot_names: Sequence[str] | None) -> list[tuple[str, np.ndarray]]:
    legend = slot_legend(k)
    if slot_names is None:
        return legend
    return [(name or label, color) for (label, color), name in zip(legend, slot_names, strict=False)] + legend[
        len(slot_names) :
    ]


def video_animation(
    video: torch.Tensor,
    recon: torch.Tensor,
    masks: torch.Tensor,
    recons: torch.Tensor,
    scale: int,
    title: str,
    true_masks: torch.Tensor | None = None,
    slot_names: Sequence[str] | None = None,
    recon_title: str = "Reconstruction",
    duration_ms: int = 500,
) -> Animation:
    """The animated figure (one frame per video frame, one row per video) and its still (one row per video and
    frame, the frames of a video grouped). Shapes: :func:`frame_rows`; ``slot_names``: legend labels of the first
    slots (e.g. "slot 1: background" of a conditional model)."""
    b, t_count = video.shape[:2]
    k = masks.shape[2]
    truth = true_masks is not None
    columns = _columns(k, truth, recon_title)
    legend = _legend(k, slot_names)
    per_t = [frame_rows(video, recon, masks, recons, t, scale, true_masks) for t in range(t_count)]
    video_labels = [f"video {i + 1}" if b > 1 else "" for i in range(b)]
    frames = [
        LabelledGrid(per_t[t], columns, video_labels, f"{title} · frame {t + 1}/{t_count}", legend)
        for t in range(t_count)
    ]
    still_rows = [per_t[t][i] for i in range(b) for t in range(t_count)]
    still_labels = [
        ", ".join(p for p in (video_labels[i], f"frame {t + 1}") if p) for i in range(b) for t in range(t_count)
    ]
    still = LabelledGrid(still_rows, columns, still_labels, title, legend, group=t_count)
    return Animation(frames, duration_ms=duration_ms, still=still)
