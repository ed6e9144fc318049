"""Procedural moving-object videos with per-frame ground truth, for the video task (SAVi, Kipf et al. 2022).

Each video: T frames (default 6) of H x W (default 64 x 64) RGB; 2-5 flat-coloured sprites (square, circle,
triangle, diamond; distinct hues) on a dark, lightly textured static background. Sprites move with constant
velocity; by default they enter and leave the frame (and need not be visible in every frame); with ``bounce`` they
reflect off the frame edges and stay inside. Each video has a random depth order: nearer sprites occlude farther
ones. Geometry is in units of the image size, so a scene is the same at any resolution.

Ground truth per frame (n videos, M = max_objects slots of objects, object ``k`` has id ``k + 1``, ids stable over
the video): ``mask`` uint8 [n, T, H, W] (0 = background; an object hidden or outside the frame is absent);
``boxes`` float32 [n, T, M, 4] (ymin, xmin, ymax, xmax) of the visible pixels, normalised as kubric/MOVi (pixel
edges: (row_min / H, col_min / W, (row_max + 1) / H, (col_max + 1) / W)), zeros where the object is not visible
(SAVi's no-track box); ``visible`` bool [n, T, M]; ``centers`` float32 [n, T, M, 2] (y, x) the sprite's centre in
[0, 1] image units, given even where it is hidden or outside (it may lie outside [0, 1]), like MOVi's
``image_positions``; ``flow`` float32 [n, T, H, W, 2] forward optical flow in pixels (delta_row, delta_column: MOVi's
order) of the surface seen at each pixel to the next frame, 0 on the static background, and 0 everywhere in the
last frame (no next frame); ``backward_flow`` the same to the previous frame (what SAVi reads from MOVi), in every
frame: the sprites moved before the first frame too, so no frame has a flow that the frames cannot show.

Determinism: video i is a pure function of (seed, i) and the settings. Latents are drawn in chunks of ``CHUNK``
videos, chunk c from ``np.random.default_rng([seed, 0x5A71, c])``; only the requested videos are drawn in pixels.
"""

from __future__ import annotations

import numpy as np

CHUNK = 256
RASTER_BATCH = 32  # videos rasterised at once (bounds memory: ~RASTER_BATCH * T * H * W * 40 bytes)
IMAGE_SIZE = (64, 64)
NUM_FRAMES = 6
MIN_OBJECTS, MAX_OBJECTS = 2, 5
SHAPES = ("square", "circle", "triangle", "diamond")  # codes 1..4; 0 = no object (padding)
HUES = 8  # colours are drawn without replacement from HUES evenly spaced hues (random offset per video)
SIZE_RANGE = (0.08, 0.15)  # half-extent of a sprite, in image sizes (5..10 px at 64 px)
SPEED_RANGE = (0.02, 0.06)  # image sizes per frame (1.3..3.8 px at 64 px)
ENTER_PROB = 0.15  # chance that a sprite starts outside the frame and enters (without bounce)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all in [0, 1]: [...] each -> [..., 3]."""
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(np.int64) % 6
    return np.stack([np.choose(i, c) for c in ([v, q, p, p, t, v], [t, v, v, q, p, p], [p, p, t, v, v, q])], -1)


def _latents(
    seed: int, chunk: int, t: int, min_objects: int, max_objects: int, bounce: bool, enter_prob: float
) -> dict:
    """The scenes of one chunk (no pixels); a fixed sequence of RNG calls per chunk."""
    rng = np.random.default_rng([seed, 0x5A71, chunk])
    n, m = CHUNK, max_objects
    num = rng.integers(min_objects, max_objects + 1, size=n)  # [n]
    present = np.arange(m)[None, :] < num[:, None]  # [n, M]
    shape = rng.integers(1, len(SHAPES) + 1, size=(n, m))
    size = rng.uniform(*SIZE_RANGE, size=(n, m))
    hue = (rng.random((n, 1)) + np.argsort(rng.random((n, HUES)), axis=1)[:, :m] / HUES) % 1.0  # distinct hues
    color = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0, (n, m)), rng.uniform(0.75, 1.0, (n, m)))  # [n, M, 3]
    inside = size[..., None] + (1 - 2 * size[..., None]) * rng.random((n, m, 2))  # fully inside (bounce)
    anywhere = rng.random((n, m, 2))  # centre anywhere in the frame: sprites may start partly outside
    angle = rng.uniform(0, 2 * np.pi, size=(n, m))
    speed = rng.uniform(*SPEED_RANGE, size=(n, m))
    # Entering sprites start just beyond an edge (centre at size + 0.2..1.5 steps outside), heading for a point
    # of the frame's middle; the others move in any direction (and may leave).
    enters = rng.random((n, m)) < enter_prob
    edge = rng.integers(0, 4, size=(n, m))  # 0 top, 1 bottom, 2 left, 3 right
    along = rng.uniform(0.1, 0.9, size=(n, m))
    out = size + rng.uniform(0.2, 1.5, size=(n, m)) * speed  # distance of the centre beyond the edge
    target = rng.uniform(0.25, 0.75, size=(n, m, 2))
    depth = np.argsort(rng.random((n, m)), axis=1)  # [n, M] object drawn at depth rank d (0 = farthest)
    background = _hsv_to_rgb(rng.random(n), rng.uniform(0, 0.4, n), rng.uniform(0.05, 0.3, n))  # [n, 3] dark
    wave = rng.uniform(0.5, 2.0, size=(n, 2, 2)) * rng.choice([-1, 1], size=(n, 2, 2))  # 2 waves x (fy, fx)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 2))
    direction = np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # [n, M, 2] (y, x)
    if bounce:
        p0 = inside
    else:
        across = np.where(edge % 2 == 0, -out, 1 + out)  # the coordinate beyond the edge
        p_edge = np.where((edge < 2)[..., None], np.stack([across, along], -1), np.stack([along, across], -1))
        heading = target - p_edge
        heading /= np.linalg.norm(heading, axis=-1, keepdims=True)
        p0 = np.where(enters[..., None], p_edge, anywhere)
        direction = np.where(enters[..., None], heading, direction)
    velocity = speed[..., None] * direction  # [n, M, 2] image units per frame
    frames = np.arange(-1, t, dtype=np.float64)[None, :, None, None]  # [1, T + 1, 1, 1]: frame -1 too (backward flow)
    pos = p0[:, None] + velocity[:, None] * frames  # [n, T + 1, M, 2]
    if bounce:  # reflect the centre into [size, 1 - size]: a triangle wave, closed form
        lo = size[:, None, :, None]
        span = 1 - 2 * lo
        y = np.mod(pos - lo, 2 * span)
        pos = lo + span - np.abs(y - span)
    z = ~present
    return {
        "num_objects": num.astype(np.int64),
        "shape": np.where(z, 0, shape).astype(np.int64),
        "size": np.where(z, 0, size).astype(np.float32),
        "color": np.where(z[..., None], 0, color).astype(np.float32),
        "velocity": np.where(z[..., None], 0, velocity).astype(np.float32),
        "position": np.where(z[:, None, :, None], 0, pos[:, 1:]),  # [n, T, M, 2] float64 (exact flow)
        "position_before": np.where(z[..., None], 0, pos[:, 0]),  # [n, M, 2] where each was a frame before
        "depth": depth,
        "background": background.astype(np.float32),
        "wave": wave.astype(np.float32),
        "phase": phase.astype(np.float32),
    }


def _coverage(shape: np.ndarray, size: np.ndarray, pos: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Pixels [b, T, H, W] (bool) covered by one sprite per video: shape [b], size [b], pos [b, T, 2] (y, x)."""
    h, w = hw
    v = ((np.arange(h) + 0.5) / h)[None, None, :, None]  # [1, 1, H, 1] pixel centres, image units
    u = ((np.arange(w) + 0.5) / w)[None, None, None, :]  # [1, 1, 1, W]
    s = np.maximum(size, 1e-6)[:, None, None, None]  # [b, 1, 1, 1]
    dy = (v - pos[:, :, 0, None, None]) / s  # [b, T, H, 1] sprite-local, units of the half-extent
    dx = (u - pos[:, :, 1, None, None]) / s  # [b, T, 1, W]
    ady, adx = np.abs(dy), np.abs(dx)
    square = (ady <= 1) & (adx <= 1)
    circle = dy * dy + dx * dx <= 1
    triangle = (ady <= 1) & (adx <= (dy + 1) / 2)  # apex up
    diamond = ady + adx <= 1.2
    code = shape[:, None, None, None]
    out = np.where(code == 1, square, np.where(code == 2, circle, np.where(code == 3, triangle, diamond)))
    return out & (code > 0)


def _render(lat: dict, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = hw
    b, t, m = lat["position"].shape[:3]
    rows = np.arange(b)
    label = np.zeros((b, t, h, w), dtype=np.uint8)  # [b, T, H, W]
    for d in range(m):  # paint back to front: the object at depth rank d over the farther ones
        k = lat["depth"][:, d]  # [b] object index
        cov = _coverage(lat["shape"][rows, k], lat["size"][rows, k], lat["position"][rows, :, k], hw)
        label = np.where(cov, (k + 1).astype(np.uint8)[:, None, None, None], label)
    # Background: base colour * (1 + texture), texture two low-frequency plane waves of amplitude 0.06 each.
    yy = ((np.arange(h) + 0.5) / h)[None, :, None]
    xx = ((np.arange(w) + 0.5) / w)[None, None, :]
    tex = sum(
        np.sin(
            2 * np.pi * (lat["wave"][:, j, 0, None, None] * yy + lat["wave"][:, j, 1, None, None] * xx)
            + lat["phase"][:, j, None, None]
        )
        for j in range(2)
    )  # fmt: skip  [b, H, W]
    bg = np.clip(lat["background"][:, None, None, :] * (1 + 0.12 * tex[..., None] / 2), 0, 1)  # [b, H, W, 3]
    palette = np.concatenate([np.zeros((b, 1, 3), np.float32), lat["color"]], axis=1)  # [b, M + 1, 3]
    pixels = palette[rows[:, None, None, None], label]  # [b, T, H, W, 3]
    video = np.where(label[..., None] > 0, pixels, bg[:, None])
    # Forward flow: each object's displacement to the next frame, in pixels (delta_row, delta_column).
    scale = np.array([h, w], dtype=np.float64)
    step = np.zeros_like(lat["position"])
    step[:, :-1] = (lat["position"][:, 1:] - lat["position"][:, :-1]) * scale  # [b, T, M, 2], last frame 0
    step = np.concatenate([np.zeros((b, t, 1, 2)), step], axis=2).astype(np.float32)  # [b, T, M + 1, 2] bg = 0
    at = rows[:, None, None, None], np.arange(t)[None, :, None, None], label  # index [b, T, H, W] -> (video, frame, id)
    flow = step[at]  # [b, T, H, W, 2]
    # Backward flow: each object's displacement to the previous frame (frame 0's too: the sprites moved before it).
    before = np.concatenate([lat["position_before"][:, None], lat["position"][:, :-1]], axis=1)  # [b, T, M, 2]
    back = ((before - lat["position"]) * scale).astype(np.float32)
    back = np.concatenate([np.zeros((b, t, 1, 2), np.float32), back], axis=2)  # [b, T, M + 1, 2] bg = 0
    return {
        "video": np.round(video * 255).astype(np.uint8),
        "mask": label,
        "flow": flow,
        "backward_flow": back[at],  # [b, T, H, W, 2]
        **_boxes(label, m),
    }


def _boxes(label: np.ndarray, m: int) -> dict[str, np.ndarray]:
    """Boxes [b, T, M, 4] of the visible pixels of each object (zeros where not visible) and visible [b, T, M]."""
    b, t, h, w = label.shape
    boxes = np.zeros((b, t, m, 4), dtype=np.float32)
    visible = np.zeros((b, t, m), dtype=bool)
    for k in range(m):  # loop over the few objects, vectorised over videos, frames and pixels
        obj = label == k + 1  # [b, T, H, W]
        rows, cols = obj.any(axis=3), obj.any(axis=2)  # [b, T, H], [b, T, W]
        seen = rows.any(axis=2)  # [b, T]
        y0, y1 = rows.argmax(axis=2), h - 1 - rows[..., ::-1].argmax(axis=2)
        x0, x1 = cols.argmax(axis=2), w - 1 - cols[..., ::-1].argmax(axis=2)
        box = np.stack([y0 / h, x0 / w, (y1 + 1) / h, (x1 + 1) / w], axis=-1)  # [b, T, 4]
        boxes[:, :, k] = np.where(seen[..., None], box, 0)
        visible[:, :, k] = seen
    return {"boxes": boxes, "visible": visible}


def generate(
    seed: int,
    start: int,
    count: int,
    num_frames: int = NUM_FRAMES,
    image_size: int = IMAGE_SIZE[0],
    min_objects: int = MIN_OBJECTS,
    max_objects: int = MAX_OBJECTS,
    bounce: bool = False,
    enter_prob: float = ENTER_PROB,
) -> dict[str, np.ndarray]:
    """Videos ``start .. start + count - 1`` of stream ``seed``. Returns (n = count, T = num_frames, H = W =
    image_size, M = max_objects; see the module docstring for the conventions): video uint8 [n, T, H, W, 3];
    mask uint8 [n, T, H, W]; boxes float32 [n, T, M, 4]; visible bool [n, T, M]; centers float32 [n, T, M, 2];
    flow, backward_flow float32 [n, T, H, W, 2]; num_objects int64 [n]; shape int64 [n, M] (1 square, 2 circle,
    3 triangle, 4 diamond, 0 padding); size float32 [n, M] (half-extent, image units); color float32 [n, M, 3];
    velocity float32 [n, M, 2] (first-frame (y, x) velocity, image units per frame); background float32 [n, 3].
    """
    if seed < 0 or start < 0 or count < 0:
        raise ValueError(f"seed, start and count must be >= 0, got {seed}, {start}, {count}")
    if num_frames < 1 or image_size < 1:
        raise ValueError(f"num_frames and image_size must be >= 1, got {num_frames}, {image_size}")
    if not 1 <= min_objects <= max_objects <= HUES:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= {HUES}, got {min_objects}, {max_objects}")
    if not 0 <= enter_prob <= 1:
        raise ValueError(f"enter_prob must be in [0, 1], got {enter_prob}")
    settings = (num_frames, min_objects, max_objects, bounce, enter_prob)
    first, last = start // CHUNK, (start + max(count, 1) - 1) // CHUNK
    lat = [_latents(seed, c, *settings) for c in range(first, last + 1)]
    lat = {k: np.concatenate([x[k] for x in lat])[start - first * CHUNK :][:count] for k in lat[0]}
    hw = (int(image_size), int(image_size))
    parts = [
        _render({k: v[i : i + RASTER_BATCH] for k, v in lat.items()}, hw) for i in range(0, count, RASTER_BATCH)
    ] or [_render({k: v[:0] for k, v in lat.items()}, hw)]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    centers = lat["position"].astype(np.float32)  # [n, T, M, 2]
    keep = ("num_objects", "shape", "size", "color", "velocity", "background")
    return {**out, "centers": centers, **{k: lat[k] for k in keep}}
