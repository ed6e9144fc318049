"""Procedural Tetrominoes (the DeepMind multi-object dataset's form, used in paper Section 4.1, Table 1).

35x35 RGB images with three tetromino pieces on a black background. Each piece is one of the 19 fixed
tetrominoes (7 free shapes in all their distinct rotations; I, O, T, S, Z, J, L) drawn with 5x5-pixel blocks,
in one of 6 colours (red, green, blue, yellow, magenta, cyan), drawn independently per piece. Pieces neither
overlap nor touch. Instance masks have background = 0 and pieces 1..3. Per-object attributes follow the
DeepMind record (x, y, shape, color, visibility).

Generation is vectorised over images and deterministic per (seed, index): images are produced in fixed
chunks of ``CHUNK`` indices, each chunk from its own RNG stream ``default_rng([seed, 0x7E7, chunk])``.
"""

from __future__ import annotations

import numpy as np

IMAGE_SIZE = (35, 35)
NUM_PIECES = 3
MAX_OBJECTS = NUM_PIECES
BLOCK = 5
CHUNK = 256

COLORS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32
)  # red, green, blue, yellow, magenta, cyan

# The 19 fixed tetrominoes as (row, col) block coordinates.
_SHAPES = [
    [(0, 0), (0, 1), (0, 2), (0, 3)],  # I horizontal
    [(0, 0), (1, 0), (2, 0), (3, 0)],  # I vertical
    [(0, 0), (0, 1), (1, 0), (1, 1)],  # O
    [(0, 0), (0, 1), (0, 2), (1, 1)],  # T down
    [(0, 1), (1, 0), (1, 1), (1, 2)],  # T up
    [(0, 0), (1, 0), (2, 0), (1, 1)],  # T right
    [(0, 1), (1, 1), (2, 1), (1, 0)],  # T left
    [(0, 1), (0, 2), (1, 0), (1, 1)],  # S horizontal
    [(0, 0), (1, 0), (1, 1), (2, 1)],  # S vertical
    [(0, 0), (0, 1), (1, 1), (1, 2)],  # Z horizontal
    [(0, 1), (1, 1), (1, 0), (2, 0)],  # Z vertical
    [(0, 0), (1, 0), (2, 0), (2, 1)],  # L
    [(0, 0), (0, 1), (0, 2), (1, 0)],  # L rotated 90
    [(0, 0), (0, 1), (1, 1), (2, 1)],  # L rotated 180
    [(1, 0), (1, 1), (1, 2), (0, 2)],  # L rotated 270
    [(0, 1), (1, 1), (2, 1), (2, 0)],  # J
    [(0, 0), (1, 0), (1, 1), (1, 2)],  # J rotated 90
    [(0, 0), (0, 1), (1, 0), (2, 0)],  # J rotated 180
    [(0, 0), (0, 1), (0, 2), (1, 2)],  # J rotated 270
]
NUM_SHAPES = len(_SHAPES)
_TEMPLATE = 4 * BLOCK  # 20x20 pixel template per shape


def _templates() -> tuple[np.ndarray, np.ndarray]:
    """Pixel templates [S, 20, 20] (bool) and piece sizes in pixels [S, 2] (height, width)."""
    t = np.zeros((NUM_SHAPES, _TEMPLATE, _TEMPLATE), dtype=bool)
    size = np.zeros((NUM_SHAPES, 2), dtype=np.int64)
    for s, blocks in enumerate(_SHAPES):
        for r, c in blocks:
            t[s, r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK] = True
        rows = max(r for r, _ in blocks) + 1
        cols = max(c for _, c in blocks) + 1
        size[s] = (rows * BLOCK, cols * BLOCK)
    return t, size


TEMPLATES, PIECE_SIZE = _templates()


def _place(shape: np.ndarray, top: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Pixel masks [n, H, W] of pieces ``shape`` [n] with top-left corners (top, left) [n]."""
    h, w = IMAGE_SIZE
    yy = np.arange(h)[None, :, None] - top[:, None, None]  # [n, H, 1]
    xx = np.arange(w)[None, None, :] - left[:, None, None]  # [n, 1, W]
    inside = (yy >= 0) & (yy < _TEMPLATE) & (xx >= 0) & (xx < _TEMPLATE)
    return TEMPLATES[shape[:, None, None], yy.clip(0, _TEMPLATE - 1), xx.clip(0, _TEMPLATE - 1)] & inside


def _dilate(mask: np.ndarray) -> np.ndarray:
    """4+diagonal-neighbour dilation of [n, H, W] bool masks by one pixel (for the 'no touching' rule)."""
    p = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= p[:, dy : dy + mask.shape[1], dx : dx + mask.shape[2]]
    return out


def _place_pieces(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Place 3 pieces in n images by vectorised rejection; returns (label, shapes, tops, lefts, failed)."""
    h, w = IMAGE_SIZE
    occupied = np.zeros((n, h, w), dtype=bool)
    label = np.zeros((n, h, w), dtype=np.uint8)
    shapes = np.zeros((n, NUM_PIECES), dtype=np.int64)
    tops = np.zeros((n, NUM_PIECES), dtype=np.int64)
    lefts = np.zeros((n, NUM_PIECES), dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    for j in range(NUM_PIECES):
        todo = np.flatnonzero(~failed)
        for _ in range(50):  # rejection rounds, vectorised over the images still to place
            s = rng.integers(0, NUM_SHAPES, size=todo.size)
            top = (rng.random(todo.size) * (h - PIECE_SIZE[s, 0] + 1)).astype(np.int64)
            left = (rng.random(todo.size) * (w - PIECE_SIZE[s, 1] + 1)).astype(np.int64)
            piece = _place(s, top, left)  # [m, H, W]
            ok = ~(_dilate(piece) & occupied[todo]).any(axis=(1, 2))
            idx = todo[ok]
            shapes[idx, j], tops[idx, j], lefts[idx, j] = s[ok], top[ok], left[ok]
            occupied[idx] |= piece[ok]
            label[idx] = np.where(piece[ok], j + 1, label[idx]).astype(np.uint8)
            todo = todo[~ok]
            if todo.size == 0:
                break
        failed[todo] = True  # the earlier pieces leave no room: the whole image is drawn again
    return label, shapes, tops, lefts, failed


def _generate_chunk(seed: int, chunk: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0x7E7, chunk])
    n = CHUNK
    label, shapes, tops, lefts, failed = _place_pieces(rng, n)
    while failed.any():
        redo = np.flatnonzero(failed)
        lb, sh, tp, lf, fl = _place_pieces(rng, redo.size)
        label[redo], shapes[redo], tops[redo], lefts[redo] = lb, sh, tp, lf
        failed[redo] = fl
    colors = rng.integers(0, len(COLORS), size=(n, NUM_PIECES))
    color_rgb = COLORS[colors]  # [n, 3, 3]
    image = np.concatenate([np.zeros((n, 1, 3), np.float32), color_rgb], axis=1)[
        np.arange(n)[:, None, None], label
    ]  # [n, H, W, 3]
    return {
        "image": (image * 255).astype(np.uint8),
        "mask": label,
        "num_objects": np.full(n, NUM_PIECES, dtype=np.int64),
        "visibility": np.ones((n, NUM_PIECES), dtype=np.float32),
        "shape": shapes,
        "color": color_rgb,
        "color_index": colors,
        # Centre of each piece in pixels (x = column, y = row), as a float like the DeepMind record.
        "x": (lefts + PIECE_SIZE[shapes, 1] / 2.0).astype(np.float32),
        "y": (tops + PIECE_SIZE[shapes, 0] / 2.0).astype(np.float32),
    }


def generate(seed: int, start: int, count: int) -> dict[str, np.ndarray]:
    """Tetrominoes images ``start .. start + count - 1`` of the stream ``seed``.

    Returns image uint8 [n, 35, 35, 3], mask uint8 [n, 35, 35] (0 = background), num_objects [n],
    visibility [n, 3], shape [n, 3], color float [n, 3, 3] (RGB in [0, 1]), color_index [n, 3], x, y [n, 3].
    """
    if start < 0 or count < 0:
        raise ValueError(f"start and count must be >= 0, got {start}, {count}")
    first, last = start // CHUNK, (start + count - 1) // CHUNK
    parts = [_generate_chunk(seed, c) for c in range(first, last + 1)] if count else []
    if not parts:
        return {k: v[:0] for k, v in _generate_chunk(seed, 0).items()}
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    offset = start - first * CHUNK
    return {k: v[offset : offset + count] for k, v in out.items()}
