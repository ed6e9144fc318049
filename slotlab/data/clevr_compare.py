"""How close the built-in CLEVR renders are to real CLEVR renders: image statistics side by side, and the real
scenes' JSON rendered by the built-in renderer for a pixel-wise comparison and a side-by-side picture.

Laid out by :mod:`slotlab.data.clevr_compare_report` for ``slotlab data compare`` and ``benchmarks/clevr_compare.py``
(and the numbers in docs/results.md, "CLEVR renderer vs real CLEVR").
Statistics of a set of uint8 RGB images (values 0-255, pooled over all pixels of all images):

- per-channel mean and standard deviation, and the standard deviation of all values;
- colourfulness: chroma (max - min of R, G, B) and HSV saturation (chroma / max, in %);
- luminance (0.299 R + 0.587 G + 0.114 B) of the top and bottom tenth of the rows (the ground's gradient);
- edges: mean Sobel gradient magnitude of the luminance (levels per pixel) and the fraction of pixels where it
  exceeds ``EDGE_THRESHOLD`` (edge density);
- a joint RGB histogram (8 bins per channel); two sets are compared by its total-variation distance (0 = the
  same colour distribution, 1 = disjoint).

A real scene's camera is not in its JSON; it is recovered from the objects' ``pixel_coords`` (pixel position and
depth of each object centre) by least squares, with CLEVR's camera model (``clevr_scene.camera_rotation``). The
lights' jitter is not recoverable: the lights are put at their un-jittered places.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.optimize import least_squares

from slotlab.data import clevr_scene as cs
from slotlab.data.errors import DatasetFileError

EDGE_THRESHOLD = 8.0  # Sobel magnitude (levels per pixel) above which a pixel counts as an edge
HIST_BINS = 8
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ----------------------------------------------------------------------------------------------------------
# statistics
def image_stats(images: np.ndarray) -> dict[str, Any]:
    """Statistics (module docstring) of uint8 images [N, H, W, 3]."""
    x = torch.as_tensor(np.asarray(images)).float()  # [N, H, W, 3]
    flat = x.reshape(-1, 3)
    mx, mn = flat.max(1).values, flat.min(1).values
    luma = x @ torch.from_numpy(LUMA)  # [N, H, W]
    h = luma.shape[1]
    tenth = max(1, h // 10)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    kern = torch.stack([sobel, sobel.T])[:, None]  # [2, 1, 3, 3]
    g = F.conv2d(luma[:, None], kern)  # [N, 2, H - 2, W - 2]
    mag = g.pow(2).sum(1).sqrt()
    q = (flat // (256 // HIST_BINS)).long()  # [P, 3] bin per channel
    idx = (q[:, 0] * HIST_BINS + q[:, 1]) * HIST_BINS + q[:, 2]
    hist = torch.bincount(idx, minlength=HIST_BINS**3).double()
    return {
        "count": int(x.shape[0]),
        "mean": flat.mean(0).tolist(),
        "std": flat.std(0).tolist(),
        "std_all": float(flat.std()),
        "chroma": float((mx - mn).mean()),
        "saturation": float(((mx - mn) / mx.clamp(min=1.0)).mean() * 100.0),
        "luma_top": float(luma[:, :tenth].mean()),
        "luma_bottom": float(luma[:, -tenth:].mean()),
        "gradient": float(mag.mean()),
        "edge_density": float((mag > EDGE_THRESHOLD).double().mean()),
        "hist": (hist / hist.sum()).numpy(),
    }


def hist_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Total-variation distance (0..1) between the RGB histograms of two ``image_stats`` results."""
    return float(0.5 * np.abs(a["hist"] - b["hist"]).sum())


def stats_rows(real: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(statistic, real, built-in) rows of two ``image_stats`` results, formatted."""

    def rgb(v: Sequence[float]) -> str:
        return " / ".join(f"{c:.1f}" for c in v)

    rows = [
        ("images", str(real["count"]), str(ours["count"])),
        ("mean R / G / B", rgb(real["mean"]), rgb(ours["mean"])),
        ("std R / G / B", rgb(real["std"]), rgb(ours["std"])),
        ("std (all values)", f"{real['std_all']:.1f}", f"{ours['std_all']:.1f}"),
        ("chroma (max - min)", f"{real['chroma']:.1f}", f"{ours['chroma']:.1f}"),
        ("HSV saturation %", f"{real['saturation']:.1f}", f"{ours['saturation']:.1f}"),
        ("luminance, top / bottom tenth", f"{real['luma_top']:.1f} / {real['luma_bottom']:.1f}",
         f"{ours['luma_top']:.1f} / {ours['luma_bottom']:.1f}"),
        ("mean Sobel gradient", f"{real['gradient']:.2f}", f"{ours['gradient']:.2f}"),
        (f"edge density (gradient > {EDGE_THRESHOLD:g})", f"{real['edge_density']:.4f}",
         f"{ours['edge_density']:.4f}"),
        ("RGB histogram TV distance", "0", f"{hist_distance(real, ours):.3f}"),
    ]  # fmt: skip
    return rows


def markdown_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pixel_errors(real: np.ndarray, ours: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean absolute error (levels) and mean signed error (ours - real) of same-scene renders uint8
    [N, H, W, 3]: over all pixels, the ground (our mask == 0) and the objects (mask > 0)."""
    d = ours.astype(np.float32) - real.astype(np.float32)  # [N, H, W, 3]
    ground = (mask == 0)[..., None].repeat(3, -1)
    out = {"mae": float(np.abs(d).mean()), "bias": float(d.mean())}
    for name, sel in (("ground", ground), ("objects", ~ground)):
        out[f"mae_{name}"] = float(np.abs(d[sel]).mean()) if sel.any() else float("nan")
        out[f"bias_{name}"] = float(d[sel].mean()) if sel.any() else float("nan")
    return out


# ----------------------------------------------------------------------------------------------------------
# real renders
def read_real(path: str | os.PathLike[str], split: str = "val", num: int | None = None):
    """Images uint8 [n, H, W, 3] and scene JSON dicts (or None) of real CLEVR renders.

    ``path``: a CLEVR v1.0 folder (its ``split`` images and scenes) or a folder of PNG files (no scenes).
    """
    from slotlab.data.clevr_folder import ClevrFolder

    root = Path(path)
    if not root.is_dir():
        raise DatasetFileError(f"{root}: no such folder (expected a CLEVR v1.0 folder or a folder of PNGs)")
    is_clevr = any((c / "scenes").is_dir() for c in (root, root / "CLEVR_v1.0"))
    if is_clevr:
        ds = ClevrFolder(root, split, image_size=None)
        n = len(ds) if num is None else min(num, len(ds))
        items = [ds[i] for i in range(n)]
        images = [it["image"].permute(1, 2, 0).numpy() for it in items]
        scenes = [ds.scenes[i] for i in range(n)]
    else:
        files = sorted(root.glob("*.png"))[:num]
        if not files:
            raise DatasetFileError(f"{root}: no PNG files and no CLEVR v1.0 scenes folder")
        images, scenes = [], None
        for f in files:
            try:
                with Image.open(f) as im:
                    images.append(np.asarray(im.convert("RGB"), np.uint8))
            except (OSError, SyntaxError, ValueError) as exc:
                raise DatasetFileError(f"{f}: cannot decode the image ({exc})") from exc
    sizes = {im.shape for im in images}
    if len(sizes) != 1:
        raise DatasetFileError(f"{root}: the images differ in size ({sorted(sizes)}); compare one size at a time")
    return np.stack(images), scenes


def _project_lookat(points: np.ndarray, camera: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(px, py, depth) [K, 3] of world points [K, 3] for a camera at ``camera`` looking at the origin."""
    h, w = size
    rot = cs.camera_rotation(camera)
    c = (points - camera) @ rot.T
    depth = -c[:, 2]
    f = cs.FOCAL_LENGTH_MM / cs.SENSOR_WIDTH_MM * w
    return np.stack([w / 2 + f * c[:, 0] / depth, h / 2 - f * c[:, 1] / depth, depth], -1)


def fit_camera(objects: Sequence[dict[str, Any]], size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Camera location [3] of a real scene from its objects' ``pixel_coords`` and ``3d_coords`` (least squares,
    starting from CLEVR's un-jittered camera), and the RMS pixel residual."""
    pts = np.array([o["3d_coords"] for o in objects], np.float64)
    obs = np.array([o["pixel_coords"] for o in objects], np.float64)

    def residual(cam: np.ndarray) -> np.ndarray:
        p = _project_lookat(pts, cam, size)
        return np.concatenate([p[:, 0] - obs[:, 0], p[:, 1] - obs[:, 1], 20.0 * (p[:, 2] - obs[:, 2])])

    fit = least_squares(residual, cs.CAMERA_LOCATION.astype(np.float64))
    p = _project_lookat(pts, fit.x, size)
    rms = float(np.sqrt(((p[:, :2] - obs[:, :2]) ** 2).mean()))
    return fit.x, rms


def scene_from_json(scene: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """A real scene's JSON as the renderer's scene dict (camera fitted, lights un-jittered)."""
    objs = scene["objects"]
    shape = np.array([cs.SHAPE_NAMES.index(o["shape"]) + 1 for o in objs])
    sz = np.array([cs.SIZE_NAMES.index(o["size"]) + 1 for o in objs])
    xyz = np.array([o["3d_coords"] for o in objs], np.float64)
    camera, _ = fit_camera(objs, size)
    return {
        "camera": camera,
        "lights": cs.LIGHT_LOCATIONS.copy(),
        "objects": {
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
            "r": cs.object_radius(shape, sz),
            "rotation": np.array([float(o["rotation"]) for o in objs]),
            "shape": shape,
            "size": sz,
            "material": np.array([cs.MATERIAL_NAMES.index(o["material"]) + 1 for o in objs]),
            "color": np.array([cs.COLOR_NAMES.index(o["color"]) + 1 for o in objs]),
        },
    }


def side_by_side(columns: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """A picture uint8 [rows * H + gaps, cols * W + gaps, 3] of image columns, each uint8 [rows, H, W, 3]."""
    rows, h, w, _ = columns[0].shape
    out = np.full((rows * h + (rows - 1) * gap, len(columns) * w + (len(columns) - 1) * gap, 3), 255, np.uint8)
    for j, col in enumerate(columns):
        for i in range(rows):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = col[i]
    return out
