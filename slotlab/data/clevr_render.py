"""Procedural CLEVR scenes rendered by a vectorised torch ray caster (no Blender), made to look like the
official generator's Blender (Cycles) renders.

Stands in for "CLEVR with masks" (DeepMind multi-object datasets; paper Section 4.1, CLEVR6 object
discovery) and CLEVR v1.0 scenes (Section 4.2, CLEVR10 set prediction). Scene sampling follows
clevr-dataset-gen (``clevr_scene``); geometry and culling are in ``clevr_geometry``, light and materials in
``clevr_shading``. This module runs the pipeline, packs the scenes into the common generator contract and holds
the reference preprocessing (``preprocess_clevr``).

Pipeline per batch of scenes: scene sampling with the visibility rule (one primary ray per pixel centre gives
the instance masks); shading in scene-linear radiance (soft shadows of three area lights, sky light with
ambient occlusion, rubber / metal with one mirror bounce; ``clevr_shading``); anti-aliasing: pixels whose 3x3
neighbourhood holds another label cast ``SUBSAMPLES`` more rays, each taking the colour of the nearest
neighbouring pixel with its label (coverage-weighted edges), then a light pixel filter (Cycles filters its
samples over 1.5 px); finally the sRGB transfer of Blender's default view and a faint Gaussian noise (``NOISE``,
the real renders' sampling noise) drawn from the scene's own RNG.

Determinism: scene i of a stream is a pure function of (seed, i, variant, image size): it is sampled from
its own RNG ``np.random.default_rng([seed, 0xC1E5, variant_id, i])`` (which also feeds the visibility
re-sampling), so ``generate(seed, 100, 10)`` equals ``generate(seed, 0, 200)[100:110]``.
Note CLEVR's quirk: ``rotation`` is stored in degrees but Blender receives the same number as radians;
the renderer reproduces that (a cube is turned by ``rotation`` radians).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from slotlab.data import clevr_scene as cs
from slotlab.data import clevr_shading as shading
from slotlab.data.clevr_geometry import Batch, Grid, focal_px, nearest_hits, primary, project

IMAGE_SIZE = (240, 320)  # (H, W), DeepMind's CLEVR with masks
VARIANTS: dict[str, dict] = {
    "clevr6": {"id": 0, "min_objects": 3, "max_objects": 6},
    "clevr10": {"id": 1, "min_objects": 3, "max_objects": 10},
    # Not a paper dataset: small scenes of 1-3 objects for the CPU set-prediction preset.
    "clevr3": {"id": 2, "min_objects": 1, "max_objects": 3},
}
DEFAULT_VARIANT = "clevr6"
MAX_OBJECTS = {name: v["max_objects"] for name, v in VARIANTS.items()}
BATCH = 16  # scenes rendered together (larger batches fall out of the CPU caches)
MAX_VISIBILITY_ROUNDS = 100
# Anti-aliasing sub-pixel offsets (x, y in pixels; a rotated grid) and the pixel filter's side weight.
SUBSAMPLES = torch.tensor([[-0.125, -0.375], [0.375, -0.125], [0.125, 0.375], [-0.375, 0.125]])
PIXEL_FILTER = 0.08
# Sampling noise of the real renders (Cycles, 512 samples): 0.6 of an 8-bit level, measured on their ground.
NOISE = 0.6 / 255

_TAG = 0xC1E5
_Grid, _Batch = Grid, Batch  # the names the tests use


def _primary(batch: Batch, grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    return primary(batch, grid, batch.dirs(grid))


def _antialias(batch: Batch, rgb: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Anti-aliased radiance [B, H, W, 3] from radiance rgb [B, H, W, 3] and labels [B, H, W] (module docstring)."""
    b, h, w = label.shape
    lab8 = label.to(torch.int16)
    edge = torch.zeros(b, h, w, dtype=torch.bool)
    dx = lab8[:, :, 1:] != lab8[:, :, :-1]  # [B, H, W - 1]
    dy = lab8[:, 1:] != lab8[:, :-1]  # [B, H - 1, W]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:] |= dy
    edge[:, :-1] |= dy
    dd = lab8[:, 1:, 1:] != lab8[:, :-1, :-1]  # diagonals
    da = lab8[:, 1:, :-1] != lab8[:, :-1, 1:]
    edge[:, 1:, 1:] |= dd
    edge[:, :-1, :-1] |= dd
    edge[:, 1:, :-1] |= da
    edge[:, :-1, 1:] |= da
    eb, ey, ex = torch.nonzero(edge, as_tuple=True)  # edge pixels [E]
    if eb.numel() == 0:
        return rgb
    ns = len(SUBSAMPLES)
    f = focal_px(w)
    sx = ex[:, None] + 0.5 + SUBSAMPLES[:, 0]  # [E, S]
    sy = ey[:, None] + 0.5 + SUBSAMPLES[:, 1]
    cam = torch.stack([(sx - w / 2) / f, -(sy - h / 2) / f, -torch.ones_like(sx)], -1)  # [E, S, 3]
    d = (F.normalize(cam, dim=-1) @ batch.rot[eb]).reshape(-1, 3)  # [E * S, 3] world
    bi = eb.repeat_interleave(ns)
    o = batch.camera[bi]
    t_obj, lab = nearest_hits(batch, bi, o, d)
    t_gnd = torch.where(d[:, 2] < -1e-6, -o[:, 2] / d[:, 2].clamp(max=-1e-6), torch.inf)
    lab = torch.where(t_obj < t_gnd, lab, 0).reshape(-1, ns)  # [E, S]
    offs = torch.tensor([(dy_, dx_) for dy_ in (-1, 0, 1) for dx_ in (-1, 0, 1)])  # [9, 2]
    ny = (ey[:, None] + offs[:, 0]).clamp(0, h - 1)  # [E, 9] (borders repeat the edge pixel)
    nx = (ex[:, None] + offs[:, 1]).clamp(0, w - 1)
    nlab = label[eb[:, None], ny, nx]  # [E, 9]
    cols = rgb[eb[:, None], ny, nx]  # [E, 9, 3]
    dist = ((SUBSAMPLES[:, None, :] - offs[None, :, [1, 0]].float()) ** 2).sum(-1)  # [S, 9]
    match = nlab[:, None, :] == lab[:, :, None]  # [E, S, 9]
    arg = torch.where(match, dist, torch.inf).argmin(-1)  # [E, S]
    pick = torch.gather(cols, 1, arg[..., None].expand(-1, -1, 3))  # [E, S, 3]
    pick = torch.where(match.any(-1)[..., None], pick, cols[:, 4:5])  # no neighbour with the label: own colour
    out = rgb.clone()
    out[eb, ey, ex] = pick.mean(1)
    return out


def _pixel_filter(rgb: torch.Tensor) -> torch.Tensor:
    """Separable [a, 1 - 2a, a] blur (a = PIXEL_FILTER) of rgb [B, H, W, 3] (edges repeated)."""
    a = PIXEL_FILTER
    x = rgb.contiguous()
    y = x * (1 - 2 * a)
    y[:, :, 1:] += a * x[:, :, :-1]
    y[:, :, 0] += a * x[:, :, 0]
    y[:, :, :-1] += a * x[:, :, 1:]
    y[:, :, -1] += a * x[:, :, -1]
    z = y * (1 - 2 * a)
    z[:, 1:] += a * y[:, :-1]
    z[:, 0] += a * y[:, 0]
    z[:, :-1] += a * y[:, 1:]
    z[:, -1] += a * y[:, -1]
    return z


def _add_noise(rgb: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """rgb [B, H, W, 3] in [0, 1] plus Gaussian noise of std NOISE, image i's drawn from seed seeds[i]."""
    noise = torch.stack([torch.randn(rgb.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds])
    return (rgb + NOISE * noise).clamp_(0, 1)


def _render_rgb(batch: Batch, grid: Grid, dirs: torch.Tensor, depth: torch.Tensor, label: torch.Tensor,
                params: dict | None = None) -> torch.Tensor:  # fmt: skip
    """Scene-linear image [B, h, w, 3] of primary hits (depth, label [B, P] tile-major), anti-aliased."""
    lin = grid.to_image(shading.shade(batch, grid, dirs, depth, label, params))  # [B, h, w, 3]
    lin = _antialias(batch, lin, grid.to_image(label[..., None])[..., 0])
    return _pixel_filter(lin)


# ----------------------------------------------------------------------------------------------------------
def _min_pixels(size: tuple[int, int]) -> float:
    return cs.MIN_PIXELS_PER_OBJECT * size[0] * size[1] / cs.CLEVR_PIXELS


def _pixel_counts(label: torch.Tensor, m: int) -> torch.Tensor:
    """Visible pixels per object [B, M] from label maps [B, ...]."""
    b = label.shape[0]
    idx = label.reshape(b, -1) + (m + 1) * torch.arange(b)[:, None]
    return torch.bincount(idx.reshape(-1), minlength=b * (m + 1)).reshape(b, m + 1)[:, 1:]


def _render_batch(
    indices: list[int], seed: int, variant: str, grid: Grid
) -> tuple[list[dict], torch.Tensor, torch.Tensor]:
    """Sample (with the visibility rule) and render scenes ``indices``.

    Returns the scenes, rgb [B, h, w, 3] in [0, 1] and labels [B, h, w] (int64).
    """
    cfg = VARIANTS[variant]
    m = cfg["max_objects"]
    scenes = []
    for i in indices:
        rng = np.random.default_rng([seed, _TAG, cfg["id"], i])
        camera, lights = cs.sample_view(rng)
        num = int(rng.integers(cfg["min_objects"], cfg["max_objects"] + 1))
        objects = cs.sample_objects(rng, num)
        scenes.append({"rng": rng, "camera": camera, "lights": lights, "num": num, "objects": objects})
    b = len(indices)
    depth = torch.zeros(b, grid.p)
    label = torch.zeros(b, grid.p, dtype=torch.int64)
    pending = list(range(b))
    thresh = _min_pixels((grid.h, grid.w))
    for _ in range(MAX_VISIBILITY_ROUNDS):
        sub = Batch([scenes[j] for j in pending], m)
        d, lab = _primary(sub, grid)
        counts = _pixel_counts(grid.to_image(lab[..., None]), m)  # [b', M], padding pixels excluded
        present = torch.arange(m)[None, :] < torch.tensor([scenes[j]["num"] for j in pending])[:, None]
        ok = ((counts >= thresh) | ~present).all(1)
        idx = torch.tensor(pending)
        depth[idx[ok]], label[idx[ok]] = d[ok], lab[ok]
        pending = [j for j, good in zip(pending, ok.tolist(), strict=True) if not good]
        if not pending:
            break
        for j in pending:  # CLEVR: re-place all objects (same count, camera and lights)
            scenes[j]["objects"] = cs.sample_objects(scenes[j]["rng"], scenes[j]["num"])
    if pending:
        raise RuntimeError(f"CLEVR scenes {[indices[j] for j in pending]} failed the visibility rule")
    batch = Batch(scenes, m)
    rgb = shading.to_srgb(_render_rgb(batch, grid, batch.dirs(grid), depth, label))
    rgb = _add_noise(rgb, [int(sc["rng"].integers(2**62)) for sc in scenes])
    return scenes, rgb, grid.to_image(label[..., None])[..., 0]


def render_scenes(
    scenes: list[dict], image_size: tuple[int, int] = IMAGE_SIZE, params: dict | None = None, noise_seed: int = 0
) -> dict[str, np.ndarray]:
    """Render given scenes (no sampling, no visibility rule): each a dict with ``camera`` [3], ``lights`` [3, 3]
    and ``objects`` (arrays x, y, z, r, rotation and 1-based shape, size, material, color codes, as
    ``clevr_scene.sample_objects`` returns them). ``params``: shading constants (default
    ``clevr_shading.PARAMS``); scene i's noise is drawn from seed ``noise_seed * 1_000_003 + i``.
    Returns image uint8 [n, H, W, 3] and mask uint8 [n, H, W]."""
    h, w = int(image_size[0]), int(image_size[1])
    grid = Grid(h, w)
    images, masks = [], []
    for lo in range(0, len(scenes), BATCH):
        part = scenes[lo : lo + BATCH]
        m = max(1, max(len(s["objects"]["x"]) for s in part))
        batch = Batch(part, m)
        dirs = batch.dirs(grid)
        depth, label = primary(batch, grid, dirs)
        rgb = shading.to_srgb(_render_rgb(batch, grid, dirs, depth, label, params))
        rgb = _add_noise(rgb, [noise_seed * 1_000_003 + lo + j for j in range(len(part))])
        images.append((rgb * 255.0 + 0.5).to(torch.uint8).numpy())
        masks.append(grid.to_image(label[..., None])[..., 0].to(torch.uint8).numpy())
    if not scenes:
        return {"image": np.zeros((0, h, w, 3), np.uint8), "mask": np.zeros((0, h, w), np.uint8)}
    return {"image": np.concatenate(images), "mask": np.concatenate(masks)}


def generate(
    seed: int,
    start: int,
    count: int,
    variant: str = DEFAULT_VARIANT,
    image_size: tuple[int, int] = IMAGE_SIZE,
    greyscale: bool = False,
) -> dict[str, np.ndarray]:
    """CLEVR-like scenes ``start .. start + count - 1`` of stream ``seed``.

    Args:
        variant: "clevr6" (3-6 objects), "clevr10" (3-10 objects) or "clevr3" (1-3 objects; not a paper set).
        image_size: (H, W) of the rendered image, default (240, 320). The visibility rule (200 pixels at
            480x320) is scaled by pixel area, so the scenes depend on the size.
        greyscale: replace the image by its luminance (0.299 R + 0.587 G + 0.114 B) in all 3 channels.

    Returns (n = count, M = MAX_OBJECTS[variant]; object j is mask label j + 1; padding is 0):
        image uint8 [n, H, W, 3]; mask uint8 [n, H, W]; num_objects int64 [n]; visibility float32 [n, M];
        x, y, z (3d_coords), rotation (degrees) float32 [n, M]; pixel_coords float32 [n, M, 3]
        (round(px), round(py), depth at the rendered size); shape, size, material, color int64 [n, M]
        (1-based codes into clevr_scene.*_NAMES); color_rgb float32 [n, M, 3]; pixel_count int64 [n, M];
        camera float32 [n, 3]; lights float32 [n, 3, 3]. ``scene_json(out, i)`` gives CLEVR's JSON form.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown CLEVR variant {variant!r}; choose from {sorted(VARIANTS)}")
    if start < 0 or count < 0 or seed < 0:
        raise ValueError(f"seed, start and count must be >= 0, got {seed}, {start}, {count}")
    h, w = int(image_size[0]), int(image_size[1])
    size = (h, w)
    m = MAX_OBJECTS[variant]
    grid = Grid(h, w)
    out: dict[str, np.ndarray] = {
        "image": np.zeros((count, h, w, 3), np.uint8),
        "mask": np.zeros((count, h, w), np.uint8),
        "num_objects": np.zeros(count, np.int64),
        "visibility": np.zeros((count, m), np.float32),
        "pixel_count": np.zeros((count, m), np.int64),
        "camera": np.zeros((count, 3), np.float32),
        "lights": np.zeros((count, 3, 3), np.float32),
        "pixel_coords": np.zeros((count, m, 3), np.float32),
        "color_rgb": np.zeros((count, m, 3), np.float32),
    }
    for key in ("x", "y", "z", "rotation"):
        out[key] = np.zeros((count, m), np.float32)
    for key in ("shape", "size", "material", "color"):
        out[key] = np.zeros((count, m), np.int64)
    for lo in range(0, count, BATCH):
        idx = list(range(start + lo, start + min(lo + BATCH, count)))
        scenes, img, label = _render_batch(idx, seed, variant, grid)  # [b, h, w, 3], [b, h, w]
        sl = slice(lo, lo + len(idx))
        if greyscale:
            img = (img @ torch.tensor([0.299, 0.587, 0.114]))[..., None].expand(-1, -1, -1, 3).clamp(0, 1)
        out["image"][sl] = (img * 255.0 + 0.5).to(torch.uint8).numpy()  # img in [0, 1]: round half up
        out["mask"][sl] = label.to(torch.uint8).numpy()
        out["pixel_count"][sl] = _pixel_counts(label, m).numpy()
        for j, s in enumerate(scenes):
            o, k, r = s["objects"], s["num"], lo + j
            out["num_objects"][r] = k
            out["camera"][r], out["lights"][r] = s["camera"], s["lights"]
            for key in ("x", "y", "z", "rotation", "shape", "size", "material", "color"):
                out[key][r, :k] = o[key]
            out["color_rgb"][r, :k] = cs.COLORS[o["color"] - 1]
            px, py, dep = project(np.stack([o["x"], o["y"], o["z"]], -1), s["camera"], size)
            out["pixel_coords"][r, :k] = np.stack([px.round().numpy(), py.round().numpy(), dep.numpy()], -1)
    out["visibility"] = (out["pixel_count"] > 0).astype(np.float32)
    return out


def scene_json(out: dict[str, np.ndarray], i: int, split: str = "train", image_index: int | None = None) -> dict:
    """Scene ``i`` of a ``generate`` output in CLEVR's scene-JSON schema (JSON-serialisable)."""
    k = int(out["num_objects"][i])
    objects = []
    for j in range(k):
        objects.append(
            {
                "shape": cs.SHAPE_NAMES[out["shape"][i, j] - 1],
                "size": cs.SIZE_NAMES[out["size"][i, j] - 1],
                "material": cs.MATERIAL_NAMES[out["material"][i, j] - 1],
                "color": cs.COLOR_NAMES[out["color"][i, j] - 1],
                "3d_coords": [float(out[a][i, j]) for a in ("x", "y", "z")],
                "rotation": float(out["rotation"][i, j]),
                "pixel_coords": [
                    int(out["pixel_coords"][i, j, 0]),
                    int(out["pixel_coords"][i, j, 1]),
                    float(out["pixel_coords"][i, j, 2]),
                ],
            }
        )
    index = i if image_index is None else image_index
    return {
        "split": split,
        "image_index": int(index),
        "image_filename": f"CLEVR_{split}_{index:06d}.png",
        "objects": objects,
        "directions": {name: [float(v) for v in vec] for name, vec in cs.DIRECTIONS.items()},
    }


def scenes_json(out: dict[str, np.ndarray], split: str = "train", start: int = 0) -> list[dict]:
    """All scenes of a ``generate`` output in CLEVR's scene-JSON schema (image_index = start + i)."""
    return [scene_json(out, i, split, start + i) for i in range(len(out["num_objects"]))]


# ----------------------------------------------------------------------------------------------------------
# preprocessing (reference code: crop rows 29:221, columns 64:256 of the 240x320 image, resize to 128x128)
CROP = (slice(29, 221), slice(64, 256))


def crop_slices(height: int, width: int) -> tuple[slice, slice]:
    """The reference crop of a render of ``height x width`` (4:3): exactly ``CROP`` at 240x320; at a smaller scale
    s = height / 240 rows ``floor(29 s) : + 192 s`` and columns ``floor(64 s) : + 192 s`` (at 120x160: rows 14:110,
    columns 32:128, half a pixel of the small render (0.5 % of the crop's side) up and left of the exact box)."""
    if (height, width) == (240, 320):
        return CROP
    if height * 320 != width * 240 or height % 5:
        raise ValueError(f"the CLEVR crop needs a 4:3 render whose height is a multiple of 5, got {height}x{width}")
    side = 192 * height // 240
    top, left = 29 * height // 240, 64 * height // 240
    return slice(top, top + side), slice(left, left + side)


def preprocess_clevr(image: np.ndarray | torch.Tensor, crop: bool = True, size: int = 128) -> torch.Tensor:
    """uint8 images [N, 240, 320, 3] (or a smaller 4:3 render: :func:`crop_slices`) -> float32 [N, 3, size, size]
    in [-1, 1] (crop, bilinear resize)."""
    x = torch.as_tensor(image)
    if crop:
        rows, cols = crop_slices(x.shape[1], x.shape[2])
        x = x[:, rows, cols]
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [N, 3, h, w]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def preprocess_clevr_mask(mask: np.ndarray | torch.Tensor, crop: bool = True, size: int = 128) -> torch.Tensor:
    """Instance label maps [N, 240, 320] -> [N, size, size] (same crop, nearest resize; dtype kept)."""
    x = torch.as_tensor(mask)
    if crop:
        rows, cols = crop_slices(x.shape[1], x.shape[2])
        x = x[:, rows, cols]
    y = F.interpolate(x[:, None].float(), size=(size, size), mode="nearest")
    return y[:, 0].to(x.dtype)
