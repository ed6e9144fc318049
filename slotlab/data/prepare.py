"""Preparing an image for a trained model as its training images were prepared (``slotlab segment``, the Python
API, and the CLEVR object-centre check of ``slotlab eval``): the CLEVR reference crop (rows 29:221, columns 64:256
of a 240x320 render, as in the reference code's CLEVR pipeline), a squash of whole scenes, or a centre crop; then
greyscale and a bilinear resize to the model's resolution. The steps taken are returned in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slotlab.data.clevr_render import CROP
from slotlab.errors import UserError

CLEVR_FRAME = (240, 320)  # (H, W) of the CLEVR scenes the reference crop is defined on
MAX_UPSCALE = 4  # refuse images whose (cropped) side is more than 4x smaller than the model's input
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class SegmentInputError(UserError, ValueError):
    """An input image that cannot be segmented (missing, a folder, unreadable, unusable pixel format, too small)."""


@dataclass
class Prepared:
    image: np.ndarray  # uint8 [H, W, 3] at the model's resolution
    steps: list[str]
    crop_box: tuple[int, int, int, int]  # (top, left, bottom, right) in the input image
    input_size: tuple[int, int]  # (H, W) of the input image


def _resize(x: np.ndarray, size: tuple[int, int], antialias: bool) -> np.ndarray:
    """uint8 [(N,) h, w, 3] -> uint8 [(N,) H, W, 3], bilinear with half-pixel centres (as the training data)."""
    if x.shape[-3:-1] == tuple(size):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x)).reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float()  # [N, 3, h, w]
    y = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    y = y.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()  # [N, H, W, 3]
    return y.reshape(*x.shape[:-3], *y.shape[1:])


def prepare_image(rgb: np.ndarray, sm: Any) -> Prepared:
    """Crop / resize / colour-convert ``rgb`` uint8 [H, W, 3] (or a batch [N, H, W, 3] of one size, prepared in one
    go) as ``sm``'s training images were prepared. ``sm`` has ``resolution`` (H, W), ``clevr_crop``, ``squash_aspect``
    (W / H or None) and ``greyscale`` (:class:`slotlab.segment.SegmentModel` has them)."""
    h, w = rgb.shape[-3:-1]
    th, tw = sm.resolution
    steps: list[str] = []
    aspect = w / h
    reference_resize = False  # bilinear without antialiasing, as tf.image.resize in the reference code
    if sm.clevr_crop and abs(aspect - CLEVR_FRAME[1] / CLEVR_FRAME[0]) < 0.01:
        fy, fx = h / CLEVR_FRAME[0], w / CLEVR_FRAME[1]
        top, bottom = round(CROP[0].start * fy), round(CROP[0].stop * fy)
        left, right = round(CROP[1].start * fx), round(CROP[1].stop * fx)
        scaled = "" if (h, w) == CLEVR_FRAME else f" (the 240x320 box scaled to {w}x{h})"
        steps.append(f"CLEVR crop rows {top}:{bottom}, cols {left}:{right} as in training{scaled}")
        reference_resize = True
    elif sm.squash_aspect is not None and abs(aspect - sm.squash_aspect) < 0.01:
        top, left, bottom, right = 0, 0, h, w
        steps.append(f"whole {w}x{h} image squashed to {tw}x{th}, as the training scenes (no crop)")
        reference_resize = True
    else:
        why = ""
        if sm.clevr_crop:
            why = " (not 4:3 like CLEVR, so not the CLEVR crop)"
        elif sm.squash_aspect is not None:
            why = f" (not {sm.squash_aspect:.2f}:1 like the training scenes, so not squashed)"
        side_h, side_w = (min(h, w), min(h, w)) if th == tw else _fit_aspect(h, w, th / tw)
        top, left = (h - side_h) // 2, (w - side_w) // 2
        bottom, right = top + side_h, left + side_w
        if (h, w) == (th, tw):
            steps.append(f"already {w}x{h}: no crop, no resize")
        elif (side_h, side_w) == (h, w):
            steps.append(f"no crop ({w}x{h} has the model's aspect ratio){why}")
        else:
            steps.append(f"center-cropped to {side_w}x{side_h} (rows {top}:{bottom}, cols {left}:{right}){why}")
    ch, cw = bottom - top, right - left
    need = math.ceil(min(th, tw) / MAX_UPSCALE)
    if min(ch, cw) < need:
        raise SegmentInputError(
            f"image too small: {w}x{h} pixels ({cw}x{ch} after cropping); the model sees {tw}x{th}, so it needs at "
            f"least {need}x{need} (more than {MAX_UPSCALE}x upscaling would only blur)"
        )
    x = rgb[..., top:bottom, left:right, :]
    if sm.greyscale:
        lum = (x.astype(np.float32) @ LUMA).round().clip(0, 255).astype(np.uint8)
        x = np.repeat(lum[..., None], 3, axis=-1)
        steps.append("converted to greyscale (0.299 R + 0.587 G + 0.114 B), as the training images")
    if (ch, cw) != (th, tw):
        antialias = not reference_resize and (ch > th or cw > tw)
        how = "bilinear, no antialiasing, as in training" if reference_resize else "bilinear"
        how += ", antialiased" if antialias else ""
        steps.append(f"resized {cw}x{ch} -> {tw}x{th} ({how})")
        x = _resize(x, (th, tw), antialias)
    steps.append("scaled to [-1, 1] (x / 127.5 - 1), as in training")
    return Prepared(np.ascontiguousarray(x), steps, (top, left, bottom, right), (h, w))


def _fit_aspect(h: int, w: int, ratio_hw: float) -> tuple[int, int]:
    """The largest (h', w') inside (h, w) with h' / w' = ratio_hw."""
    if h / w > ratio_hw:
        return max(1, round(w * ratio_hw)), w
    return h, max(1, round(h / ratio_hw))
