"""Figures researchers look at (paper Figure 3): image, reconstruction, combined mask and per-slot
reconstructions multiplied by their alpha masks, with a coloured border per slot matching the mask colours;
and attention maps per iteration. Pure numpy + Pillow, no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from slotlab.atomic import atomic_open

# Distinct slot colours (tab10 + extras), RGB in [0, 1].
SLOT_COLORS = np.array(
    [
        [0.12, 0.47, 0.71],
        [1.00, 0.50, 0.05],
        [0.17, 0.63, 0.17],
        [0.84, 0.15, 0.16],
        [0.58, 0.40, 0.74],
        [0.55, 0.34, 0.29],
        [0.89, 0.47, 0.76],
        [0.50, 0.50, 0.50],
        [0.74, 0.74, 0.13],
        [0.09, 0.75, 0.81],
        [0.00, 0.00, 0.50],
        [0.50, 0.00, 0.00],
    ],
    dtype=np.float32,
)


def slot_colors(k: int) -> np.ndarray:
    reps = -(-k // len(SLOT_COLORS))
    return np.tile(SLOT_COLORS, (reps, 1))[:k]  # [K, 3]


def to_unit(image: torch.Tensor) -> np.ndarray:
    """[..., 3, H, W] in [-1, 1] -> [..., H, W, 3] in [0, 1]."""
    x = (image.detach().float().cpu().clamp(-1, 1) + 1) / 2
    return x.movedim(-3, -1).numpy()


def _border(tile: np.ndarray, color: np.ndarray, width: int) -> np.ndarray:
    t = tile.copy()
    t[:width], t[-width:], t[:, :width], t[:, -width:] = color, color, color, color
    return t


def _upscale(tile: np.ndarray, scale: int) -> np.ndarray:
    return tile.repeat(scale, axis=0).repeat(scale, axis=1)


def grid_image(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tiles [H, W, 3] in [0, 1] arranged in rows -> one uint8 image with white padding."""
    h = max(t.shape[0] for r in rows for t in r)
    w = max(t.shape[1] for r in rows for t in r)
    ncol = max(len(r) for r in rows)
    canvas = np.ones((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + t.shape[0], x : x + t.shape[1]] = t
    return (canvas.clip(0, 1) * 255).round().astype(np.uint8)


def discovery_rows(
    image: torch.Tensor, recon: torch.Tensor, masks: torch.Tensor, recons: torch.Tensor, scale: int = 1
) -> list[list[np.ndarray]]:
    """Paper Figure 3 (a) rows: image | recon | combined mask | slot_k recon x mask (coloured borders).

    image, recon: [B, 3, H, W]; masks: [B, K, 1, H, W]; recons: [B, K, 3, H, W] (all in model units).
    """
    img, rec = to_unit(image), to_unit(recon)  # [B, H, W, 3]
    m = masks.detach().float().cpu()[:, :, 0].numpy()  # [B, K, H, W]
    per_slot = to_unit(recons) * m[..., None] + (1 - m[..., None])  # white where the slot is absent
    k = m.shape[1]
    colors = slot_colors(k)
    combined = colors[m.argmax(axis=1)]  # [B, H, W, 3]
    width = max(1, scale)
    rows = []
    for b in range(img.shape[0]):
        row = [_upscale(img[b], scale), _upscale(rec[b], scale), _upscale(combined[b], scale)]
        row += [_border(_upscale(per_slot[b, j], scale), colors[j], width) for j in range(k)]
        rows.append(row)
    return rows


def attention_rows(image: torch.Tensor, attn: torch.Tensor, grid: tuple[int, int], scale: int = 1) -> list:
    """Paper Figure 3 (b): per image, per iteration t, the attention of each slot over the input grid.

    image: [B, 3, H, W]; attn: [B, T, K, N] with N = grid[0] * grid[1]. One row per (image, iteration).
    """
    img = to_unit(image)
    a = attn.detach().float().cpu()
    b, t, k, _ = a.shape
    a = a.view(b, t, k, *grid).numpy()
    colors = slot_colors(k)
    rows = []
    for i in range(b):
        for it in range(t):
            row = [_upscale(img[i], scale)]
            for j in range(k):
                amap = a[i, it, j] / max(a[i, it, j].max(), 1e-8)
                tile = np.repeat(amap[..., None], 3, axis=-1)
                if tile.shape[:2] != img.shape[1:3]:
                    ry, rx = img.shape[1] // tile.shape[0], img.shape[2] // tile.shape[1]
                    tile = tile.repeat(max(ry, 1), 0).repeat(max(rx, 1), 1)
                row.append(_border(_upscale(tile, scale), colors[j], max(1, scale)))
            rows.append(row)
    return rows


def figure6_rows(image: torch.Tensor, attn: torch.Tensor, grid: tuple[int, int], scale: int = 2) -> list:
    """Paper Figure 6: per image and iteration, the image then each slot's attention mask over the image.

    image: [B, 3, H, W] in [-1, 1]; attn: [B, T, K, N]. The masks (softmax over slots, so in [0, 1]) are
    upsampled to the image size (nearest); the image shows through where the slot attends, white elsewhere.
    """
    img = to_unit(image)  # [B, H, W, 3]
    b, t, k, _ = attn.shape
    a = attn.detach().float().cpu().view(b, t, k, *grid).numpy()
    ry, rx = img.shape[1] // grid[0], img.shape[2] // grid[1]
    colors = slot_colors(k)
    rows = []
    for i in range(b):
        for it in range(t):
            row = [img[i].repeat(scale, 0).repeat(scale, 1)]
            for j in range(k):
                m = a[i, it, j].repeat(ry, 0).repeat(rx, 1)[..., None]  # [H, W, 1]
                tile = (img[i] * m + (1.0 - m)).repeat(scale, 0).repeat(scale, 1)
                tile[:scale], tile[-scale:], tile[:, :scale], tile[:, -scale:] = (colors[j],) * 4
                row.append(tile)
            rows.append(row)
    return rows


def save_png(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        Image.fromarray(array).save(f, format="PNG")
    return path
