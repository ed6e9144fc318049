"""What the figures researchers look at show (paper Figure 3: image, reconstruction, combined mask and per-slot
reconstructions multiplied by their alpha masks, with a coloured border per slot matching the mask colours,
attention maps per iteration; Figure 6: attention masks of a set-prediction model; `slotlab segment`'s figure):
the tiles as numpy arrays, and each figure as a :class:`~slotlab.drawing.LabelledGrid` with its column titles,
row labels and slot legend, which :mod:`slotlab.drawing` draws and writes. No display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from slotlab.atomic import atomic_open
from slotlab.drawing import LabelledGrid

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


# ------------------------------------------------------------------------------------------ labelled figures


def slot_legend(k: int) -> list[tuple[str, np.ndarray]]:
    """(``"slot j"``, colour) of every slot: the colours of the mask tiles and of the slot tiles' borders."""
    return [(f"slot {j + 1}", c) for j, c in enumerate(slot_colors(k))]


def slot_columns(k: int, first: Sequence[str]) -> list[str]:
    return [*first, *(f"Slot {j + 1}" for j in range(k))]


def _row_label(image: int, images: int, iteration: int | None = None) -> str:
    parts = [f"image {image + 1}"] if images > 1 else []
    if iteration is not None:
        parts.append(f"iteration {iteration}")
    return ", ".join(parts)


def discovery_grid(
    image: torch.Tensor, recon: torch.Tensor, masks: torch.Tensor, recons: torch.Tensor, scale: int, title: str
) -> LabelledGrid:
    """Figure 3 (a), one row per image: Image | Reconstruction | Mask | Slot k (reconstruction x alpha mask)."""
    rows = discovery_rows(image, recon, masks, recons, scale)
    n, k = len(rows), masks.shape[1]
    return LabelledGrid(
        rows, slot_columns(k, ("Image", "Reconstruction", "Mask")), [_row_label(b, n) for b in range(n)], title,
        slot_legend(k),
    )  # fmt: skip


def attention_grid(
    image: torch.Tensor, attn: torch.Tensor, grid: tuple[int, int], scale: int, title: str
) -> LabelledGrid:
    """Figure 3 (b), one row per image and iteration t: Image | the attention map of each slot at iteration t."""
    return _iteration_rows_grid(attention_rows(image, attn, grid, scale), attn, title)


def _iteration_rows_grid(rows: list, attn: torch.Tensor, title: str) -> LabelledGrid:
    """A grid of one row per image and iteration (``attn`` [B, T, K, N]): Image | one column per slot."""
    b, t, k, _ = attn.shape
    labels = [_row_label(i, b, it + 1) for i in range(b) for it in range(t)]
    return LabelledGrid(rows, slot_columns(k, ("Image",)), labels, title, slot_legend(k), group=t)


def iterations_grid(
    image: torch.Tensor,
    recon: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    recons: Sequence[torch.Tensor],
    scale: int,
    title: str,
) -> LabelledGrid:
    """Figure 3 (c), one row per image and iteration t: Figure 3 (a)'s columns after t iterations (lists over t of
    recon [B, 3, H, W], masks [B, K, 1, H, W], recons [B, K, 3, H, W])."""
    t_count, b, k = len(recon), image.shape[0], masks[0].shape[1]
    per_t = [discovery_rows(image, recon[t], masks[t], recons[t], scale) for t in range(t_count)]
    rows = [per_t[t][i] for i in range(b) for t in range(t_count)]
    labels = [_row_label(i, b, t + 1) for i in range(b) for t in range(t_count)]
    columns = slot_columns(k, ("Image", "Reconstruction", "Mask"))
    return LabelledGrid(rows, columns, labels, title, slot_legend(k), group=t_count)


def figure6_grid(
    image: torch.Tensor, attn: torch.Tensor, grid: tuple[int, int], scale: int, title: str
) -> LabelledGrid:
    """Figure 6, one row per image and iteration t: Image | each slot's attention mask over the image."""
    return _iteration_rows_grid(figure6_rows(image, attn, grid, scale), attn, title)


def segmentation_grid(
    image: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    attn: np.ndarray,
    recon: np.ndarray | None,
    recons: np.ndarray | None,
    title: str,
    scale: int | None = None,
) -> LabelledGrid:
    """`slotlab segment`'s figure of one image (uint8 [H, W, 3]): with a decoder, Image | Reconstruction |
    Mask (argmax) | Overlay | Slot k (reconstruction x mask), then one row per iteration t: the argmax of the
    attention over the image and each slot's attention map (paper Figure 3). Without a decoder (set prediction):
    Image | Overlay | each slot's attention mask over the image, per iteration (Figure 6).

    masks: [K, H, W]; labels: [H, W] argmax; attn: [T, K, h, w]; recon: [3, H, W], recons: [K, 3, H, W] in
    [-1, 1] or None."""
    h, w = image.shape[:2]
    s = max(1, -(-128 // max(1, min(h, w)))) if scale is None else int(scale)
    img = image.astype(np.float32) / 255.0  # [H, W, 3]
    k = masks.shape[0]
    colors = slot_colors(k)
    seg_tile = colors[labels]  # [H, W, 3]
    overlay = 0.5 * img + 0.5 * seg_tile
    up = lambda t: _upscale(t, s)  # noqa: E731
    t_count, _, gh, gw = attn.shape
    iy, ix = np.arange(h) * gh // h, np.arange(w) * gw // w  # nearest upsampling of the grid to the image
    decoder = recon is not None and recons is not None

    def attn_tiles(t: int) -> list[np.ndarray]:
        a = attn[t][:, iy][:, :, ix]  # [K, H, W]
        arg = colors[a.argmax(0)]  # [H, W, 3]
        maps = [0.5 * img + 0.5 * arg]
        for j in range(k):
            m = (a[j] / max(float(a[j].max()), 1e-8))[..., None]  # [H, W, 1]
            tile = np.repeat(m, 3, -1) if decoder else img * m + (1 - m)
            maps.append(_border(up(tile), colors[j], s))
        maps[0] = up(maps[0])
        return maps

    rows: list[list[np.ndarray | None]] = []
    row_labels: list[str] = []
    if decoder:
        recon_t = to_unit(torch.from_numpy(recon))  # [H, W, 3]
        per_slot = to_unit(torch.from_numpy(recons)) * masks[..., None] + (1 - masks[..., None])
        columns = slot_columns(k, ("Image", "Reconstruction", "Mask (argmax)", "Overlay"))
        rows.append([up(img), up(recon_t), up(seg_tile), up(overlay)])
        rows[0] += [_border(up(per_slot[j]), colors[j], s) for j in range(k)]
        row_labels.append("output")
        for t in range(t_count):
            rows.append([None, None, None, *attn_tiles(t)])
            row_labels.append(f"attention, iteration {t + 1}")
    else:
        columns = slot_columns(k, ("Image", "Attention (argmax)"))
        for t in range(t_count):
            rows.append([up(img), *attn_tiles(t)])
            row_labels.append(f"attention, iteration {t + 1}")
    return LabelledGrid(rows, columns, row_labels, title, slot_legend(k))
