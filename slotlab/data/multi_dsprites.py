"""Procedural Multi-dSprites (the DeepMind multi-object dataset used in paper Section 4.1, Table 1).

Three variants, as in DeepMind's ``multi_object_datasets``:

- ``colored_on_grayscale``: 2-5 sprites with random HSV colours on a random grayscale background (K = 6
  entities including the background; the paper's Multi-dSprites setting).
- ``colored_on_colored``: 1-4 sprites with random HSV colours on a random HSV-coloured background (K = 5).
- ``binarized``: 2-3 white sprites on black (K = 4; the paper's "binarized Multi-dSprites" ablation).

Sprites follow dSprites: shapes square / ellipse / heart, 6 scales linspace(0.5, 1), 40 orientations
``2 pi k / 40``, positions 32 values linspace(0, 1) in x and y. Sprites are painted in order, so later
sprites occlude earlier ones; the instance mask holds the topmost sprite (1..n, 0 = background) and a
sprite left with no visible pixel gets visibility 0.

Rasterisation is analytic (point-in-shape tests at pixel centres, vectorised over images and pixels).
Geometry chosen here (dSprites itself ships bitmaps): in units of the image width, a sprite of scale s has
size ``0.3 * s`` -- the square's side, the ellipse's major axis (minor axis half of it) and the heart's
width -- so a scale-1 sprite spans ~19 px of the 64 px image. The position latent p in [0, 1] maps to the
centre ``0.15 + 0.7 * p`` (9.6 px .. 54.4 px), so large rotated squares at the extremes clip slightly,
as in dSprites.

Determinism: sample i of the output is a pure function of (seed, i, variant). Latents are drawn in fixed
chunks of ``CHUNK`` indices, chunk c from ``np.random.default_rng([seed, variant_id, c])``; only the
requested images of a chunk are rasterised.
"""

from __future__ import annotations

import numpy as np

IMAGE_SIZE = (64, 64)
CHUNK = 256

SHAPES = ("square", "ellipse", "heart")  # shape codes 1, 2, 3 (0 = no object, padding)
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.arange(40) * (2 * np.pi / 40)
POSITIONS = np.linspace(0.0, 1.0, 32)

SPRITE_SIZE = 0.3  # size of a scale-1 sprite as a fraction of the image width
POS_OFFSET, POS_RANGE = 0.15, 0.7  # centre = POS_OFFSET + POS_RANGE * position (fraction of image)

# variant -> settings. ``max_objects`` counts sprites only; ``num_entities`` = max_objects + background (K).
VARIANTS: dict[str, dict] = {
    "colored_on_grayscale": {
        "id": 0,
        "min_objects": 2,
        "max_objects": 5,
        "num_entities": 6,
        "background": "grayscale",
        "sprite_color": "hsv",
    },
    "colored_on_colored": {
        "id": 1,
        "min_objects": 1,
        "max_objects": 4,
        "num_entities": 5,
        "background": "hsv",
        "sprite_color": "hsv",
    },
    "binarized": {
        "id": 2,
        "min_objects": 2,
        "max_objects": 3,
        "num_entities": 4,
        "background": "black",
        "sprite_color": "white",
    },
}
DEFAULT_VARIANT = "colored_on_grayscale"
MAX_OBJECTS = {name: v["max_objects"] for name, v in VARIANTS.items()}

# HSV sampling ranges for coloured sprites / backgrounds: hue U[0, 1), saturation and value U[lo, 1].
# Saturation >= 0.5 keeps sprites distinguishable from a grayscale background; value >= 0.5 avoids
# near-black sprites. (DeepMind documents "random HSV colours" without the ranges.)
SAT_RANGE = (0.5, 1.0)
VAL_RANGE = (0.5, 1.0)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for arrays [..., 3] with all channels in [0, 1]."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _random_hsv(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    h = rng.random(shape)
    s = SAT_RANGE[0] + (SAT_RANGE[1] - SAT_RANGE[0]) * rng.random(shape)
    v = VAL_RANGE[0] + (VAL_RANGE[1] - VAL_RANGE[0]) * rng.random(shape)
    return hsv_to_rgb(np.stack([h, s, v], axis=-1))


def _sample_chunk(seed: int, variant: str, chunk: int) -> dict[str, np.ndarray]:
    """Latents of the CHUNK scenes of ``chunk`` (no pixels). Fixed RNG call sequence per chunk."""
    cfg = VARIANTS[variant]
    rng = np.random.default_rng([seed, cfg["id"], chunk])
    n, m = CHUNK, cfg["max_objects"]
    num = rng.integers(cfg["min_objects"], cfg["max_objects"] + 1, size=n)  # [n]
    present = np.arange(m)[None, :] < num[:, None]  # [n, m]
    shape = rng.integers(1, len(SHAPES) + 1, size=(n, m))
    scale = SCALES[rng.integers(0, len(SCALES), size=(n, m))]
    orient = ORIENTATIONS[rng.integers(0, len(ORIENTATIONS), size=(n, m))]
    x = POSITIONS[rng.integers(0, len(POSITIONS), size=(n, m))]
    y = POSITIONS[rng.integers(0, len(POSITIONS), size=(n, m))]
    if cfg["sprite_color"] == "hsv":
        color = _random_hsv(rng, (n, m))  # [n, m, 3]
    else:
        color = np.ones((n, m, 3))
    if cfg["background"] == "grayscale":
        background = np.repeat(rng.random((n, 1)), 3, axis=1)  # [n, 3]
    elif cfg["background"] == "hsv":
        background = _random_hsv(rng, (n,))
    else:
        background = np.zeros((n, 3))
    z = ~present
    return {
        "num_objects": num.astype(np.int64),
        "shape": np.where(z, 0, shape).astype(np.int64),
        "scale": np.where(z, 0, scale).astype(np.float32),
        "orientation": np.where(z, 0, orient).astype(np.float32),
        "x": np.where(z, 0, x).astype(np.float32),
        "y": np.where(z, 0, y).astype(np.float32),
        "color": np.where(z[..., None], 0, color).astype(np.float32),
        "background_color": background.astype(np.float32),
    }


def _inside(lat: dict[str, np.ndarray], k: int, size: tuple[int, int]) -> np.ndarray:
    """Pixel coverage [n, H, W] (bool) of sprite k of every scene (point-in-shape tests at pixel centres)."""
    h, w = size
    f32 = np.float32
    v = ((np.arange(h, dtype=f32) + 0.5) / h)[None, :, None]  # [1, H, 1] row coordinate in [0, 1] (down)
    u = ((np.arange(w, dtype=f32) + 0.5) / w)[None, None, :]  # [1, 1, W]
    cx = (POS_OFFSET + POS_RANGE * lat["x"][:, k])[:, None, None].astype(f32)  # [n, 1, 1]
    cy = (POS_OFFSET + POS_RANGE * lat["y"][:, k])[:, None, None].astype(f32)
    th = lat["orientation"][:, k][:, None, None]
    s = SPRITE_SIZE * lat["scale"][:, k][:, None, None]  # sprite size in image widths
    s = np.where(s > 0, s, 1.0).astype(f32)  # padding slots: any non-zero size (masked out below)
    dx, dy = u - cx, v - cy  # [n, H, W]
    c, sn = np.cos(th).astype(f32), np.sin(th).astype(f32)
    lx = (c * dx + sn * dy) / s  # sprite-local coordinates in units of the sprite size
    ly = (-sn * dx + c * dy) / s
    square = (np.abs(lx) <= 0.5) & (np.abs(ly) <= 0.5)
    ellipse = (lx / 0.5) ** 2 + (ly / 0.25) ** 2 <= 1.0
    # Heart: (X^2 + Y^2 - 1)^3 - X^2 Y^3 <= 0 (Y up), which spans 2.28 x 2.23; scaled to width ~1.
    hx, hy = lx / 0.44, -ly / 0.44 + 0.12
    heart = (hx * hx + hy * hy - 1.0) ** 3 - hx * hx * hy**3 <= 0.0
    shape = lat["shape"][:, k][:, None, None]
    return np.where(shape == 1, square, np.where(shape == 2, ellipse, heart)) & (shape > 0)


def _render(lat: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    n, m = lat["shape"].shape
    label = np.zeros((n, *size), dtype=np.uint8)  # [n, H, W]
    for k in range(m):  # paint order: later sprites occlude earlier ones
        label[_inside(lat, k, size)] = k + 1
    palette = np.concatenate([lat["background_color"][:, None], lat["color"]], axis=1)  # [n, m + 1, 3]
    image = palette[np.arange(n)[:, None, None], label]  # [n, H, W, 3]
    counts = np.stack([(label == k + 1).sum(axis=(1, 2)) for k in range(m)], axis=1)  # [n, m]
    return {
        "image": np.round(image * 255.0).astype(np.uint8),
        "mask": label,
        "visibility": (counts > 0).astype(np.float32),
    }


def generate(
    seed: int, start: int, count: int, variant: str = DEFAULT_VARIANT, image_size: int = 64
) -> dict[str, np.ndarray]:
    """Multi-dSprites scenes ``start .. start + count - 1`` of stream ``seed`` for ``variant``.

    Returns (n = count, M = VARIANTS[variant]["max_objects"], H = W = image_size):
    image uint8 [n, H, W, 3]; mask uint8 [n, H, W] (0 = background, sprites 1..num_objects in paint
    order); num_objects int64 [n]; visibility float32 [n, M]; shape int64 [n, M] (1 square, 2 ellipse,
    3 heart, 0 padding); x, y (position latents in [0, 1]), scale, orientation (radians) float32 [n, M];
    color float32 [n, M, 3] (RGB in [0, 1]); background_color float32 [n, 3].
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown Multi-dSprites variant {variant!r}; choose from {sorted(VARIANTS)}")
    if start < 0 or count < 0 or seed < 0:
        raise ValueError(f"seed, start and count must be >= 0, got {seed}, {start}, {count}")
    size = (int(image_size), int(image_size))
    if count == 0:
        lat = {k: v[:0] for k, v in _sample_chunk(seed, variant, 0).items()}
        return {**lat, **_render(lat, size)}
    first, last = start // CHUNK, (start + count - 1) // CHUNK
    parts = []
    for c in range(first, last + 1):
        lo = max(start - c * CHUNK, 0)
        hi = min(start + count - c * CHUNK, CHUNK)
        lat = {k: v[lo:hi] for k, v in _sample_chunk(seed, variant, c).items()}
        parts.append({**lat, **_render(lat, size)})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
