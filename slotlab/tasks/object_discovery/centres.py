"""``slotlab eval OBJECT_DISCOVERY_MODEL --data-path CLEVR_FOLDER``: a CLEVR v1.0 folder has scene JSON but no
masks, so instead of FG-ARI the evaluation reports the object-centre separation
(:mod:`slotlab.metrics.centre_separation`: the share of objects whose centre pixel lies in a slot of its own that
is not the background's).

The folder's images are prepared exactly as ``slotlab segment`` prepares one's own images for the model
(:func:`slotlab.data.prepare.prepare_image`: a CLEVR model's reference crop, rows 29:221 and columns 64:256 of a
240x320 render, scaled to a 4:3 image of another size, and the bilinear resize without antialiasing; other models:
the centred square), and each object's ``pixel_coords`` (x, y) goes through the same crop and resize: pixel
coordinates are taken as positions in the rendered image (pixel i spans [i, i + 1), as CLEVR's generator rounds
Blender's camera coordinates), mapped to the model's grid and floored. Scenes with more objects than the model's
dataset allows (CLEVR6: 6) are left out, as the DeepMind CLEVR6 file is filtered; the number left out is recorded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from slotlab.checks import EVAL_ADVICE, require_finite_output
from slotlab.data.errors import DatasetFileError
from slotlab.metrics.centre_separation import COUNTS, centre_separation
from slotlab.noise import index_noise
from slotlab.tasks.common import EVAL_SEED, image_to_model, run_model, slot_shape

FOLDER_SPLITS = {"eval": "val"}  # slotlab eval's held-out split -> the CLEVR v1.0 split (test has no scenes)
BACKGROUND_RULE = "largest argmax area"


@dataclass(frozen=True)
class Preparation:
    """How the model's images are prepared (the fields :func:`slotlab.data.prepare.prepare_image` reads)."""

    resolution: tuple[int, int]  # (H, W) of the model's input
    clevr_crop: bool
    greyscale: bool
    squash_aspect: float | None = None


def map_centres(pixel: np.ndarray, box: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """Object centres (x, y) [n, O, 2] in the input images -> (row, column) int64 [n, O, 2] on the model's grid,
    through each image's crop ``box`` [n, 4] (top, left, bottom, right) and the resize to ``resolution`` (H, W).
    Centres outside the crop get rows / columns outside [0, H) x [0, W)."""
    top, left, bottom, right = (box[:, i, None].astype(np.float64) for i in range(4))  # [n, 1] each
    th, tw = resolution
    col = np.floor((pixel[..., 0] - left) * tw / (right - left))  # [n, O]
    row = np.floor((pixel[..., 1] - top) * th / (bottom - top))  # [n, O]
    return np.stack([row, col], -1).astype(np.int64)


def _pixel_coords(scene: dict[str, Any], where: str) -> np.ndarray:
    """(x, y) [k, 2] of a scene's objects' ``pixel_coords``; DatasetFileError where they are missing or malformed."""
    try:
        xy = np.array([o["pixel_coords"][:2] for o in scene["objects"]], dtype=np.float64)
    except (KeyError, TypeError, ValueError, IndexError):
        raise DatasetFileError(f"{where}: an object has no usable 'pixel_coords' [x, y, depth]") from None
    if xy.shape != (len(scene["objects"]), 2) or not np.isfinite(xy).all():
        raise DatasetFileError(f"{where}: an object has no usable 'pixel_coords' [x, y, depth]")
    return xy


def load_clevr_centres(
    root: str | os.PathLike[str], split: str, count: int, prep: Preparation, max_objects: int | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The first ``count`` scenes (of those with at most ``max_objects`` objects) of a CLEVR v1.0 folder's split
    (``split``: slotlab eval's "eval"): image uint8 [n, 3, H, W] prepared as ``prep`` says, centre int64
    [n, O, 2] (row, column on the model's grid), real bool [n, O]; and the facts to record."""
    from slotlab.data.clevr_folder import ClevrFolder
    from slotlab.data.prepare import prepare_image  # duck-typed: reads resolution, clevr_crop, greyscale, squash_aspect

    if split not in FOLDER_SPLITS:
        raise DatasetFileError(f"--split {split}: CLEVR v1.0's test split has no scene JSON; use eval (CLEVR's val)")
    every = ClevrFolder(root, FOLDER_SPLITS[split], image_size=None)
    ds = ClevrFolder(root, FOLDER_SPLITS[split], max_objects=max_objects, image_size=None)
    n = min(count, len(ds))
    if n == 0:
        raise DatasetFileError(f"{root}: no scene of split {ds.split} has at most {max_objects} objects")
    images, boxes, pixels = [], [], []
    for i in range(n):  # one file at a time (decoding; the images may differ in size)
        prepared = prepare_image(ds[i]["image"].permute(1, 2, 0).numpy(), prep)
        images.append(torch.from_numpy(prepared.image).permute(2, 0, 1))  # [3, H, W]
        boxes.append(prepared.crop_box)
        pixels.append(_pixel_coords(ds.scenes[i], f"{ds.scenes_path} scene {i} ({ds.image_path(i).name})"))
    o = max(len(p) for p in pixels)
    pixel = np.zeros((n, o, 2))
    real = np.zeros((n, o), bool)
    for i, p in enumerate(pixels):  # padding ragged object lists
        pixel[i, : len(p)], real[i, : len(p)] = p, True
    centre = map_centres(pixel, np.array(boxes), prep.resolution)  # [n, O, 2]
    data = {"image": torch.stack(images), "centre": torch.from_numpy(centre), "real": torch.from_numpy(real)}
    facts = {"source": "clevr_folder", "folder_split": ds.split, "scenes_skipped": len(every) - len(ds),
             "max_objects": max_objects}  # fmt: skip
    return data, facts


@torch.no_grad()
def evaluate_centres(
    model: nn.Module,
    data: dict[str, torch.Tensor],
    batch_size: int = 64,
    num_slots: int | None = None,
    iters: int | None = None,
    channels_last: bool = False,
    seed: int = EVAL_SEED,
) -> dict[str, Any]:
    """The object-centre separation of ``model`` on ``data`` (:func:`load_clevr_centres`): the fraction
    ``centre_separation`` (NaN when no centre lies inside the images) and the counts ``centre_<COUNTS>``."""
    model.eval()
    device = next(model.parameters()).device
    k, d = slot_shape(model, num_slots)
    n = len(data["image"])
    totals = torch.zeros(len(COUNTS), dtype=torch.long)
    for start in range(0, n, batch_size):
        image = image_to_model(data["image"][start : start + batch_size].to(device), channels_last)
        noise = index_noise(seed, torch.arange(start, start + len(image)), k, d).to(device)
        out = run_model(model, image, noise, iters=iters) if k else model(image, num_slots=num_slots, iters=iters)
        require_finite_output(out.masks, "masks", f"held-out images {start}..{start + len(image) - 1}", EVAL_ADVICE)
        labels = out.masks[:, :, 0].argmax(1)  # [B, H, W] slot per pixel
        counts = centre_separation(labels, data["centre"][start : start + batch_size].to(device),
                                   data["real"][start : start + batch_size].to(device), out.masks.shape[1])  # fmt: skip
        totals += torch.stack([counts[c].sum() for c in COUNTS]).cpu()
    result: dict[str, Any] = {f"centre_{c}": int(v) for c, v in zip(COUNTS, totals.tolist(), strict=True)}
    counted = result["centre_counted"]
    result["centre_separation"] = result["centre_separated"] / counted if counted else math.nan
    result["num_images"] = n
    result["background_rule"] = BACKGROUND_RULE
    return result
