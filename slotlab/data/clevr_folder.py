"""CLEVR v1.0 folder reader for the set-prediction experiments of Slot Attention (paper Sections 2.3, 4.2).

Reads the original CLEVR v1.0 layout::

    CLEVR_v1.0/images/{split}/CLEVR_{split}_{index:06d}.png
    CLEVR_v1.0/scenes/CLEVR_{split}_scenes.json

and returns, per scene, the image resized bilinearly (no crop, as in the reference set-prediction code) and
the [10, 19] property-prediction target: (3d_coords + 3) / 6 (3), size one-hot (small, large), material
one-hot (rubber, metal), shape one-hot (cube, sphere, cylinder), colour one-hot (gray, blue, brown, yellow,
red, green, purple, cyan), real-object flag (1); padding rows are all zero. ``max_objects`` keeps only scenes
with at most that many objects (CLEVR6: ``max_objects=6``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from slotlab.data.errors import DatasetFileError
from slotlab.data.fingerprint import content_key

__all__ = [
    "CLEVR_COLORS",
    "CLEVR_MATERIALS",
    "CLEVR_SHAPES",
    "CLEVR_SIZES",
    "NUM_TARGET_FEATURES",
    "ClevrFolder",
    "collate_clevr",
    "encode_clevr_objects",
    "folder_content_key",
]

CLEVR_SIZES = ("small", "large")
CLEVR_MATERIALS = ("rubber", "metal")
CLEVR_SHAPES = ("cube", "sphere", "cylinder")
CLEVR_COLORS = ("gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan")
# 3 coords + 2 sizes + 2 materials + 3 shapes + 8 colours + 1 real-object flag = 19
NUM_TARGET_FEATURES = 3 + len(CLEVR_SIZES) + len(CLEVR_MATERIALS) + len(CLEVR_SHAPES) + len(CLEVR_COLORS) + 1

_ATTRIBUTES = (("size", CLEVR_SIZES), ("material", CLEVR_MATERIALS), ("shape", CLEVR_SHAPES),
               ("color", CLEVR_COLORS))  # fmt: skip


def encode_clevr_objects(objects: Sequence[dict[str, Any]], max_objects: int = 10) -> np.ndarray:
    """Encode a CLEVR scene's objects as the set-prediction target, float32 [max_objects, 19].

    Row layout: (3d_coords + 3) / 6 (3), size (2), material (2), shape (3), color (8) one-hots, real flag (1).
    Rows past ``len(objects)`` are zero. Raises ``ValueError`` for more than ``max_objects`` objects, a
    missing key, or an attribute value outside the CLEVR vocabulary.
    """
    if len(objects) > max_objects:
        raise ValueError(f"scene has {len(objects)} objects, more than max_objects={max_objects}")
    target = np.zeros((max_objects, NUM_TARGET_FEATURES), dtype=np.float32)  # [max_objects, 19]
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise ValueError(f"object {i} is {type(obj).__name__} {obj!r:.60}, not a mapping of attributes")
        try:
            coords = np.asarray(obj["3d_coords"], dtype=np.float32)
        except KeyError:
            raise ValueError(f"object {i} has no '3d_coords'") from None
        except (TypeError, ValueError):
            raise ValueError(f"object {i} has non-numeric 3d_coords {obj['3d_coords']!r}") from None
        if coords.shape != (3,):
            raise ValueError(f"object {i} has 3d_coords of shape {coords.shape}, expected 3 numbers")
        target[i, :3] = (coords + 3.0) / 6.0
        col = 3
        for key, vocab in _ATTRIBUTES:
            if key not in obj:
                raise ValueError(f"object {i} has no {key!r}")
            value = obj[key]
            if value not in vocab:
                raise ValueError(f"object {i} has unknown {key} {value!r}; expected one of {list(vocab)}")
            target[i, col + vocab.index(value)] = 1.0
            col += len(vocab)
        target[i, col] = 1.0  # real-object flag
    return target


def is_clevr_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a CLEVR v1.0 folder (``scenes/`` in it or in its ``CLEVR_v1.0/``)."""
    root = Path(path)
    return root.is_dir() and any((c / "scenes").is_dir() for c in (root, root / "CLEVR_v1.0"))


def _resolve_root(root: str | os.PathLike[str]) -> Path:
    root = Path(root)
    for candidate in (root, root / "CLEVR_v1.0"):
        if (candidate / "images").is_dir() and (candidate / "scenes").is_dir():
            return candidate
    raise DatasetFileError(
        f"{root}: not a CLEVR v1.0 folder (expected {root}/CLEVR_v1.0/images and .../scenes, or images/ and "
        "scenes/ directly under it). Download and unzip CLEVR_v1.0.zip and pass its folder."
    )


def folder_content_key(root: str | os.PathLike[str], split: str) -> str:
    """A key of the content of a CLEVR v1.0 folder's ``split``: the bytes of its scenes file and the name, size
    and modification time of every image (:func:`slotlab.data.fingerprint.content_key`). Caches of decoded
    scenes are keyed by it, so an edited scenes file or a deleted / replaced image is read again."""
    base = _resolve_root(root)
    return content_key([base / "scenes" / f"CLEVR_{split}_scenes.json"], [base / "images" / split])


class ClevrFolder(Dataset):
    """CLEVR v1.0 scenes for set prediction.

    Each item is ``dict(image=uint8 tensor [3, H, W], objects=list of the scene's object dicts,
    target=float32 tensor [10, 19], index=int image index)``. ``image_size`` is (H, W); the image is resized
    bilinearly (half-pixel centres, no antialiasing, like ``tf.image.resize``) without cropping. Use
    ``collate_clevr`` as the DataLoader ``collate_fn`` (``objects`` lists differ in length).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        max_objects: int | None = None,
        image_size: tuple[int, int] | None = (128, 128),
        target_rows: int = 10,
    ) -> None:
        self.root = _resolve_root(root)
        self.split = split
        self.max_objects = max_objects
        self.image_size = tuple(image_size) if image_size is not None else None
        self.target_rows = target_rows
        self.image_dir = self.root / "images" / split
        self.scenes_path = self.root / "scenes" / f"CLEVR_{split}_scenes.json"
        if not self.scenes_path.is_file():
            hint = " (CLEVR v1.0 ships no scenes for the test split; use 'val')" if split == "test" else ""
            raise DatasetFileError(f"{self.scenes_path}: scenes file not found{hint}. Check root and split.")
        if not self.image_dir.is_dir():
            raise DatasetFileError(f"{self.image_dir}: image folder not found. Check root and split.")
        try:
            with open(self.scenes_path, encoding="utf-8") as f:
                scenes = json.load(f)["scenes"]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetFileError(
                f"{self.scenes_path}: not valid JSON ({exc}); the file is corrupt or truncated, download it again."
            ) from exc
        except (KeyError, TypeError):
            raise DatasetFileError(
                f"{self.scenes_path}: no top-level 'scenes' list; this is not a CLEVR scenes file."
            ) from None
        self.scenes: list[dict[str, Any]] = []
        for i, scene in enumerate(scenes):
            objects = scene.get("objects") if isinstance(scene, dict) else None
            if not isinstance(objects, list):
                raise DatasetFileError(f"{self.scenes_path}: scene {i} has no 'objects' list.")
            if not objects:
                raise DatasetFileError(
                    f"{self.scenes_path}: scene {i} ({scene.get('image_filename', '?')}) is empty (no objects); "
                    "CLEVR scenes have 3-10 objects: the scenes file is damaged or not a CLEVR scenes file."
                )
            if max_objects is not None and len(objects) > max_objects:
                continue  # CLEVR6-style filtering by object count
            try:
                encode_clevr_objects(objects, target_rows)  # validate every attribute value up front
            except ValueError as exc:
                raise DatasetFileError(
                    f"{self.scenes_path}: scene {i} (image index {scene.get('image_index', '?')}): {exc}. "
                    "The scenes file is not CLEVR v1.0 compatible."
                ) from None
            self.scenes.append(scene)

    def __len__(self) -> int:
        return len(self.scenes)

    def image_path(self, idx: int) -> Path:
        scene = self.scenes[idx]
        name = scene.get("image_filename") or f"CLEVR_{self.split}_{int(scene['image_index']):06d}.png"
        return self.image_dir / name

    def _load_image(self, path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as img:
                img.load()
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
        except FileNotFoundError:
            raise DatasetFileError(f"{path}: image file not found; the CLEVR folder is incomplete.") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise DatasetFileError(
                f"{path}: cannot decode the PNG ({exc}); the file is truncated or corrupt, extract it again."
            ) from exc
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1)  # [3, H, W] uint8
        if self.image_size is None or tuple(image.shape[1:]) == self.image_size:
            return image.contiguous()
        resized = F.interpolate(
            image[None].float(), size=self.image_size, mode="bilinear", align_corners=False, antialias=False
        )  # [1, 3, h, w]
        return resized[0].round().clamp(0, 255).to(torch.uint8)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        scene = self.scenes[idx]
        image = self._load_image(self.image_path(idx))  # [3, H, W] uint8
        target = torch.from_numpy(encode_clevr_objects(scene["objects"], self.target_rows))  # [10, 19]
        return {
            "image": image,
            "objects": scene["objects"],
            "target": target,
            "index": int(scene.get("image_index", idx)),
        }


def collate_clevr(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack images [B, 3, H, W] and targets [B, 10, 19]; keep ``objects`` as a list of lists."""
    return {
        "image": torch.stack([b["image"] for b in batch]),
        "target": torch.stack([b["target"] for b in batch]),
        "objects": [b["objects"] for b in batch],
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
    }
