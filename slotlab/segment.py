"""Segment one's own images with a trained model (``slotlab segment IMAGE... --model NAME|RUN_DIR``).

Serves the paper's object-discovery results (Section 4.1, Figure 3: per-slot reconstructions, alpha masks and
attention per iteration) on images outside the training distribution, and draws the attention masks of a model
without a decoder (set prediction, Section 4.2, Figure 6).

Each image is read with Pillow, converted to 8-bit RGB (alpha dropped, greyscale / palette / CMYK / 16-bit
converted, each said), and prepared as the model's training data were prepared (the task says how:
:meth:`slotlab.tasks.base.Task.image_preparation`):

* models trained on CLEVR scenes cropped as the reference code does (240x320 scenes cropped to rows 29:221,
  columns 64:256 and resized to 128x128 bilinearly without antialiasing): a 4:3 image gets the same crop (scaled
  to its size) and resize; greyscale models take the luminance as in training.
* models trained on whole scenes squashed to S x S (set prediction: 3:2): an image of that aspect is squashed the
  same way.
* every other case (models trained on square images, or an aspect ratio unlike the training images'): the
  largest centred square is cropped, then resized (bilinear; antialiased when shrinking).

The prepared image is scaled to [-1, 1] as in training (``image_to_model``) and the model runs with a fixed
slot-initialisation noise (``index_noise(seed, 0)``), so the same image gives the same masks every time.
Library code only: :func:`segment_file` returns what it did; the CLI prints.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from slotlab.data.prepare import Prepared, SegmentInputError, prepare_image
from slotlab.drawing import checkpoint_label, write
from slotlab.errors import UserError
from slotlab.inference.checkpoint_io import CARD_FILE, read_card_file
from slotlab.inference.domain import DomainReference, reference_of, verdict
from slotlab.inference.loading import load_model
from slotlab.noise import index_noise
from slotlab.tasks import get_task
from slotlab.tasks.common import EVAL_SEED, SegmentRequest, image_to_model, reconstructs, slot_attention_of
from slotlab.viz import save_png, segmentation_grid, slot_colors


class SegmentModelError(UserError, ValueError):
    """A model that cannot segment (e.g. a Slot MLP model without a decoder: no masks and no attention)."""


@dataclass
class SegmentModel:
    """A loaded model and how its training images were prepared."""

    model: nn.Module
    cfg: dict[str, Any]
    task: str  # the config's task (slotlab.tasks.TASKS)
    resolution: tuple[int, int]  # (H, W) of the model's input
    source: str  # the checkpoint path
    dataset: str
    clevr_crop: bool  # object discovery on CLEVR: reference crop before the resize
    greyscale: bool  # training images were greyscale (luminance in all 3 channels)
    squash_aspect: float | None  # W / H of training scenes squashed to the model's square input (set prediction)
    has_decoder: bool
    has_attention: bool
    notes: list[str] = field(default_factory=list)
    domain: DomainReference | None = None  # held-out reconstruction error (from a zoo / pretrained card)

    def describe(self) -> str:
        kind = get_task(self.task).title
        h, w = self.resolution
        kt = get_task(self.task).describe_slots(self.model, self.cfg)
        return f"{kind} model trained on {self.dataset}, input {h}x{w}, {kt} ({self.source})"


def load_segment_model(checkpoint: str | Path) -> SegmentModel:
    """Load a model of any task from a checkpoint path, run folder or pretrained folder."""
    model, cfg, ckpt = load_model(checkpoint)
    sm = segment_model_of(model, cfg, ckpt)
    card = Path(checkpoint) / CARD_FILE
    if sm.has_decoder and Path(checkpoint).is_dir() and card.is_file():
        sm.domain = reference_of(read_card_file(card))
    return sm


def segment_model_of(model: nn.Module, cfg: dict[str, Any], ckpt: dict[str, Any]) -> SegmentModel:
    """A loaded model with how its training images were prepared (the task's crop, aspect, greyscale)."""
    task = get_task(cfg["task"])
    has_decoder, has_attention = reconstructs(model), slot_attention_of(model) is not None
    if not has_decoder and not has_attention:
        raise SegmentModelError(
            f"{ckpt['_path']} is a Slot MLP {task.title.replace(' ', '-')} model: it has neither a decoder nor "
            "attention maps, so there is nothing to segment with"
        )
    prep = task.image_preparation(model, cfg)
    return SegmentModel(
        model, cfg, task.name, tuple(model.resolution), str(ckpt["_path"]), prep["dataset"],
        clevr_crop=prep["clevr_crop"], greyscale=prep["greyscale"], squash_aspect=prep["squash_aspect"],
        has_decoder=has_decoder, has_attention=has_attention, notes=list(prep["notes"]),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# reading and preparing


def read_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read ``path`` with Pillow -> (uint8 RGB [H, W, 3], steps taken). Raises :class:`SegmentInputError`."""
    path = Path(path)
    if not path.exists():
        raise SegmentInputError("no such file")
    if path.is_dir():
        raise SegmentInputError("is a directory, not an image file")
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise SegmentInputError("not an image Pillow can read (expected PNG or JPEG)") from None
    except Image.DecompressionBombError as e:
        raise SegmentInputError(f"refused by Pillow as too large ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise SegmentInputError(f"cannot read the image ({type(e).__name__}: {e})") from None
    steps = [f"read {img.format or '?'} {img.width}x{img.height} mode {img.mode}"]
    if getattr(img, "n_frames", 1) > 1:
        steps.append(f"{img.n_frames} frames: used the first")
    if _exif_rotation(img):
        img = ImageOps.exif_transpose(img)
        steps.append(f"turned upright by its EXIF orientation: {img.width}x{img.height}")
    return _to_rgb(img, steps), steps


def _exif_rotation(img: Image.Image) -> bool:
    try:
        return img.getexif().get(0x0112, 1) not in (1, None)
    except Exception:  # broken EXIF blocks: ignore the orientation
        return False


def _to_rgb(img: Image.Image, steps: list[str]) -> np.ndarray:
    """Any Pillow mode -> uint8 [H, W, 3], appending what was converted to ``steps``."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("RGBA", "RGBa", "RGBX"):
        steps.append(f"{mode} -> RGB (alpha / padding channel dropped)")
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    if mode in ("L", "LA", "La", "1"):
        what = {"1": "1-bit black/white", "L": "greyscale", "LA": "greyscale + alpha", "La": "greyscale + alpha"}
        steps.append(f"{what[mode]} -> RGB (grey repeated in 3 channels{', alpha dropped' if 'A' in mode else ''})")
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in img.info
        steps.append(f"palette ({mode}) -> RGB{' (transparency dropped)' if alpha else ''}")
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(img).astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 65535:
            raise SegmentInputError(f"32-bit integer pixels in [{lo:g}, {hi:g}]: not an 8- or 16-bit image")
        bits = 16 if (mode.startswith("I;16") or hi > 255) else 8
        grey = np.round(a / 257.0) if bits == 16 else a
        steps.append(f"{bits}-bit greyscale ({mode}) -> 8-bit RGB" + (" (value / 257)" if bits == 16 else ""))
        g = grey.clip(0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        steps.append(f"{mode} -> RGB (Pillow's conversion{'; colours approximate' if mode == 'CMYK' else ''})")
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    raise SegmentInputError(f"unsupported pixel format {mode!r} ({len(img.getbands())} channels); save it as RGB")


# ----------------------------------------------------------------------------------------------------------
# running the model


@dataclass
class Segmentation:
    masks: np.ndarray  # float32 [K, H, W] (alpha masks; set prediction: upsampled attention)
    labels: np.ndarray  # int64 [H, W] argmax over slots
    attn: np.ndarray  # float32 [T, K, h, w] attention of every iteration (T = 0 without Slot Attention)
    recon: np.ndarray | None  # float32 [3, H, W] in [-1, 1] (None: no decoder)
    recons: np.ndarray | None  # float32 [K, 3, H, W] in [-1, 1]
    pred: np.ndarray | None  # float32 [K, 19] set-prediction properties


@torch.no_grad()
def run_segmentation(
    sm: SegmentModel, image: np.ndarray, num_slots: int | None = None, iters: int | None = None, seed: int = EVAL_SEED
) -> Segmentation:
    """Run ``sm`` on a prepared uint8 image [H, W, 3] with the fixed slot-init noise of (seed, index 0)."""
    x = image_to_model(torch.from_numpy(image).permute(2, 0, 1)[None], channels_last=False)  # [1, 3, H, W]
    model = sm.model
    sa = slot_attention_of(model)
    noise = index_noise(seed, torch.zeros(1, dtype=torch.long), num_slots or sa.num_slots, sa.noise_dim) if sa else None
    if sa is None:
        out = model(x, num_slots=num_slots, iters=iters)
    else:
        out = model(x, num_slots=num_slots, iters=iters, noise=noise)
    grid = model.encoder.feature_resolution
    attn = out.attn[0].float()  # [T, K, N]
    attn_maps = attn.reshape(attn.shape[0], attn.shape[1], *grid).numpy()  # [T, K, h, w]
    if sm.has_decoder:
        masks = out.masks[0, :, 0].float().numpy()  # [K, H, W]
        recon, recons, pred = out.recon[0].float().numpy(), out.recons[0].float().numpy(), None
    else:
        last = attn[-1].reshape(1, attn.shape[1], *grid)  # [1, K, h, w]
        masks = F.interpolate(last, size=sm.resolution, mode="bilinear", align_corners=False)[0]
        masks = (masks / masks.sum(0, keepdim=True).clamp_min(1e-8)).numpy()  # [K, H, W], sums to 1
        recon = recons = None
        pred = out.pred[0].float().numpy()
    return Segmentation(masks.astype(np.float32), masks.argmax(0), attn_maps.astype(np.float32), recon, recons, pred)


def check_model_runs(sm: SegmentModel, num_slots: int | None, iters: int | None) -> None:
    """Fail early (SegmentModelError) when the requested K / T cannot be used with this model."""
    try:
        if not get_task(sm.task).segment_check(sm.model, sm.cfg, num_slots, iters):  # a task's own inputs (videos)
            run_segmentation(sm, np.zeros((*sm.resolution, 3), np.uint8), num_slots, iters)
    except ValueError as e:
        raise SegmentModelError(f"cannot run the model with --num-slots {num_slots} --iters {iters}: {e}") from e


# ----------------------------------------------------------------------------------------------------------
# writing (the figure is drawn by slotlab.viz / slotlab.drawing)


def labels_at_input(prepared: Prepared, labels: np.ndarray) -> np.ndarray:
    """Argmax labels [H, W] at the model's resolution -> int16 [H0, W0] at the input image's resolution
    (nearest; -1 outside the crop the model saw)."""
    top, left, bottom, right = prepared.crop_box
    out = np.full(prepared.input_size, -1, dtype=np.int16)
    t = torch.from_numpy(labels.astype(np.float32))[None, None]
    up = F.interpolate(t, size=(bottom - top, right - left), mode="nearest")[0, 0]
    out[top:bottom, left:right] = up.numpy().astype(np.int16)
    return out


@dataclass
class SegmentResult:
    steps: list[str]
    paths: list[Path]
    num_slots: int
    iters: int
    domain: str | None = None  # the reconstruction error against the held-out one (decoder models)
    far_outside: bool = False  # far outside the training images (slotlab.inference.domain's rule)


def segment_file(
    sm: SegmentModel,
    path: str | Path,
    out_dir: str | Path,
    stem: str | None = None,
    num_slots: int | None = None,
    iters: int | None = None,
    seed: int = EVAL_SEED,
    formats: Sequence[str] = (),
) -> SegmentResult:
    """Read, prepare and segment one image; write ``<stem>_figure.png`` (and ``.pdf`` / ``.svg`` for
    ``formats``), ``<stem>_masks.png`` (colour-coded argmax at the input resolution; black outside the crop) and
    ``<stem>_masks.npz`` into ``out_dir``. Raises :class:`SegmentInputError` for an unusable input. A task with
    inputs of its own kind (videos) segments them itself (:meth:`slotlab.tasks.base.Task.segment_file`)."""
    path = Path(path)
    stem = stem or path.stem

    def prepare(pictures: np.ndarray) -> tuple[np.ndarray, list[str]]:
        prepared = prepare_image(pictures, sm)
        return prepared.image, prepared.steps

    try:
        request = SegmentRequest(path, Path(out_dir), stem, num_slots, iters, seed, formats, prepare, sm.source)
        own = get_task(sm.task).segment_file(sm.model, sm.cfg, request)
    except UserError as e:  # an input of the task's own kind that cannot be used
        raise SegmentInputError(str(e)) from e
    if own is not None:
        return SegmentResult(list(own["steps"]), list(own["paths"]), int(own["num_slots"]), int(own["iters"]))
    rgb, steps = read_image(path)
    prepared = prepare_image(rgb, sm)
    steps += prepared.steps
    seg = run_segmentation(sm, prepared.image, num_slots, iters, seed)
    out = Path(out_dir)
    k, t = seg.masks.shape[0], seg.attn.shape[0]
    title = f"{path.name} · {checkpoint_label(sm.source)} · K={k}, T={t}"
    grid = segmentation_grid(prepared.image, seg.masks, seg.labels, seg.attn, seg.recon, seg.recons, title)
    full = labels_at_input(prepared, seg.labels)  # [H0, W0]
    colors = np.concatenate([slot_colors(seg.masks.shape[0]), np.zeros((1, 3), np.float32)])  # -1 -> black
    mask_png = (colors[full] * 255).round().astype(np.uint8)
    paths = [*write(grid, out / f"{stem}_figure.png", formats), save_png(mask_png, out / f"{stem}_masks.png")]
    arrays: dict[str, Any] = {
        "masks": seg.masks,  # [K, H, W] float32
        "labels": seg.labels.astype(np.int16),  # [H, W]
        "labels_input": full,  # [H0, W0], -1 outside the crop
        "attn": seg.attn,  # [T, K, h, w]
        "image": prepared.image,  # [H, W, 3] uint8, the model's input before scaling to [-1, 1]
        "crop_box": np.array(prepared.crop_box, dtype=np.int32),  # top, left, bottom, right in the input
        "steps": np.array("\n".join(steps)),
        "model": np.array(sm.source),
    }
    if seg.recon is not None:
        arrays["recon"] = seg.recon  # [3, H, W] in [-1, 1]
    if seg.pred is not None:
        arrays["pred"] = seg.pred  # [K, 19]
    npz = out / f"{stem}_masks.npz"
    tmp = out / f".{stem}_masks.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(npz)
    paths.append(npz)
    far, domain = False, None
    if seg.recon is not None:
        x = prepared.image.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0  # [3, H, W] as the model saw it
        far, domain = verdict(float(((seg.recon - x) ** 2).mean()), sm.domain)
    return SegmentResult(steps, paths, int(seg.masks.shape[0]), int(seg.attn.shape[0]), domain, far)


OUTPUT_KINDS = ("_figure", "_masks")  # segment_file writes <stem>_figure.<ext> and <stem>_masks.<ext>


def unique_stems(paths: Sequence[str | Path], out_dir: str | Path | None = None) -> list[str]:
    """Output stems for the inputs: the file stem, with ``_2``, ``_3``... where two inputs share one, or where
    ``out_dir`` holds files of that stem already (an earlier call's outputs, or inputs): nothing is replaced."""
    folder = Path(out_dir) if out_dir is not None else None
    used: set[str] = set()

    def taken(stem: str) -> bool:
        if stem in used:
            return True
        pattern = glob.escape(stem)
        return folder is not None and any(next(folder.glob(f"{pattern}{kind}.*"), None) for kind in OUTPUT_KINDS)

    stems = []
    for p in paths:
        base = Path(p).stem or "image"
        stem, n = base, 1
        while taken(stem):
            n += 1
            stem = f"{base}_{n}"
        used.add(stem)
        stems.append(stem)
    return stems
