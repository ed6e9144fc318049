"""The Python API for trained models: ``slotlab.load_model(name_or_path)`` -> a :class:`SlotModel` that prepares
images as its training images were prepared, runs (slots, masks, reconstructions, attention: paper Section 4.1,
Figure 3; set prediction: Section 4.2), segments, and saves itself as a Hugging Face-style folder.

A model is given as a zoo name (``slotlab models``), a run folder, a ``.ckpt`` file, a pretrained folder
(``config.json`` + ``model.safetensors``) or, with the ``hf`` extra installed, a Hugging Face Hub repo id
(``user/repo``). Nothing loaded can run code: see :mod:`slotlab.inference.checkpoint_io`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.errors import UserError
from slotlab.inference.checkpoint_io import CheckpointError, load_checkpoint, write_pretrained
from slotlab.inference.loading import model_from_checkpoint
from slotlab.noise import index_noise
from slotlab.tasks import get_task
from slotlab.tasks.common import EVAL_SEED, reconstructs, slot_attention_of


class ImageInputError(UserError, ValueError):
    """Images the model cannot take (wrong type, dtype, value range, channels or an empty batch)."""


@dataclass
class SlotModelOutput:
    """What a model computes for a batch of B images (K slots, T iterations, h x w encoder grid). A video model's
    outputs have the clip's frames after B instead: slots [B, T, K, D], masks [B, T, K, H, W], attn [B, T, K, N],
    recon [B, T, C, H, W], recons [B, T, K, C, H, W] (T = frames)."""

    slots: Tensor  # [B, K, D]
    masks: Tensor  # [B, K, H, W]: alpha masks (softmax over slots); set prediction: attention upsampled, sums to 1
    attn: Tensor  # [B, T, K, h, w]: Slot Attention of every iteration
    recon: Tensor | None = None  # [B, 3, H, W] in [-1, 1] (models with a decoder)
    recons: Tensor | None = None  # [B, K, 3, H, W] per-slot RGB in [-1, 1] (models with a decoder)
    pred: Tensor | None = None  # [B, K, 19] predicted properties (models with a property head)


class SlotModel(nn.Module):
    """A trained slotlab model with its input convention. ``model(model.preprocess(images))`` -> outputs."""

    def __init__(self, model: nn.Module, cfg: dict[str, Any], ckpt: dict[str, Any], name: str | None = None) -> None:
        super().__init__()
        from slotlab.segment import segment_model_of  # how the training images were prepared

        self.model = model.eval()
        self.config = cfg
        self.task: str = cfg["task"]
        self.step = int(ckpt.get("global_step", 0))
        self.name = name or str(ckpt.get("_path", "model"))
        self._ckpt_meta = {k: ckpt[k] for k in ("hyper_parameters", "global_step", "slotlab_format") if k in ckpt}
        self._prep = segment_model_of(model, cfg, ckpt)
        self.resolution: tuple[int, int] = tuple(self._prep.resolution)

    @property
    def num_slots(self) -> int:
        sa = slot_attention_of(self.model)
        return int(sa.num_slots) if sa is not None else int(self.config["model"]["num_slots"])

    def extra_repr(self) -> str:
        h, w = self.resolution
        return f"{self.name}: {self.task}, input {h}x{w}, K={self.num_slots}, step {self.step}"

    # ------------------------------------------------------------------------------------------------------
    def preprocess(self, images: Any) -> Tensor:
        """Images -> float [B, 3, H, W] in [-1, 1] at the model's resolution, prepared as its training images were
        (CLEVR: the reference crop; other aspect ratios: centred crop; then resize; greyscale models: luminance).

        ``images``: a PIL image or a list of them; a numpy array or tensor of uint8 pixels (0..255) or floats in
        [0, 1], channels last ([H, W, 3] / [B, H, W, 3]) or first ([3, H, W] / [B, 3, H, W]); a list of arrays of
        different sizes. Greyscale ([..., 1] or [H, W]) and RGBA are converted."""
        from slotlab.segment import prepare_image

        batches = [prepare_image(rgb, self._prep).image for rgb in _to_uint8_groups(images)]  # each [n, H, W, 3]
        x = torch.from_numpy(np.concatenate(batches)).permute(0, 3, 1, 2).float()  # [B, 3, H, W]
        return x.div_(127.5).sub_(1.0)

    @torch.no_grad()
    def forward(
        self, images: Any, num_slots: int | None = None, iters: int | None = None, seed: int = EVAL_SEED
    ) -> SlotModelOutput:
        """Run on ``images``: the output of :meth:`preprocess` (float [B, 3, H, W] in [-1, 1], some value below 0),
        or anything :meth:`preprocess` takes, prepared here (a float tensor with every value in [0, 1] is taken as
        images in [0, 1]: rescaled, never misread as [-1, 1] input). The slot-init noise of image i is that of
        ``slotlab eval``'s image i (a function of ``seed`` and i): deterministic. ``num_slots``/``iters``: K, T."""
        task = get_task(self.task)
        if task.clip_input:
            return self._forward_clips(task, images, num_slots, iters, seed)
        x = images if _is_prepared(images, self.resolution) else self.preprocess(images)  # [B, 3, H, W] in [-1, 1]
        sa = slot_attention_of(self.model)
        b = x.shape[0]
        kwargs: dict[str, Any] = {"num_slots": num_slots, "iters": iters}
        if sa is not None:
            kwargs["noise"] = index_noise(seed, torch.arange(b), num_slots or sa.num_slots, sa.noise_dim)  # [B, K, D]
        out = self.model(x, **kwargs)
        grid = self.model.encoder.feature_resolution
        attn = out.attn.float()  # [B, T, K, N]
        attn = attn.reshape(b, attn.shape[1], attn.shape[2], *grid)  # [B, T, K, h, w]
        if reconstructs(self.model):
            return SlotModelOutput(out.slots, out.masks[:, :, 0].float(), attn, out.recon.float(), out.recons.float())
        masks = F.interpolate(attn[:, -1], size=self.resolution, mode="bilinear", align_corners=False)  # [B, K, H, W]
        masks = masks / masks.sum(1, keepdim=True).clamp_min(1e-8)
        return SlotModelOutput(out.slots, masks, attn, pred=out.pred.float())

    def _forward_clips(
        self, task: Any, clips: Any, num_slots: int | None, iters: int | None, seed: int
    ) -> SlotModelOutput:
        """A video model on ``clips``: float [B, T, 3, H, W] in [-1, 1] at the model's size (prepared), or a clip /
        a list of clips of frames in any form :meth:`preprocess` takes for a batch of images ([T, H, W, 3] uint8,
        [T, 3, H, W] floats in [0, 1], ...). Outputs gain the time axis: masks [B, T, K, H, W], slots
        [B, T, K, D], recon [B, T, C, H, W]."""
        if isinstance(clips, Tensor) and clips.dim() == 5 and _is_prepared(clips.flatten(0, 1), self.resolution):
            x = clips.float()  # [B, T, 3, H, W]
        else:
            listed = isinstance(clips, (list, tuple)) and clips and getattr(clips[0], "ndim", 0) == 4
            groups = list(clips) if listed or getattr(clips, "ndim", 0) == 5 else [clips]  # clips, or one clip
            frames = [self.preprocess(g) for g in groups]  # each [T, 3, H, W]
            if len({f.shape[0] for f in frames}) > 1:
                raise ImageInputError(f"clips of different lengths in one batch: {[f.shape[0] for f in frames]} frames")
            x = torch.stack(frames)  # [B, T, 3, H, W]
        fields = task.api_forward(self.model, self.config, x, num_slots, iters, seed)
        return SlotModelOutput(**fields)

    def segment(self, images: Any, num_slots: int | None = None, iters: int | None = None) -> Tensor:
        """Images -> int64 [B, H, W]: the slot each pixel belongs to (argmax of the masks), at the model's size;
        clips of a video model -> [B, T, H, W]."""
        out = self(images, num_slots=num_slots, iters=iters)
        return out.masks.argmax(-3)

    # ------------------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, card: dict[str, Any] | None = None) -> Path:
        """Write this model as a Hugging Face-style folder (config.json, model.safetensors, README.md)."""
        ckpt = {
            **self._ckpt_meta,
            "state_dict": {f"model.{k}": v for k, v in self.model.state_dict().items()},
        }
        ckpt.setdefault("hyper_parameters", {"config": self.config})
        return write_pretrained(ckpt, folder, {"name": Path(folder).name, "task": self.task, **(card or {})})

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path) -> SlotModel:
        """Same as :func:`load_model`."""
        return load_model(name_or_path)


def load_model(name_or_path: str | Path) -> SlotModel:
    """A trained model from a zoo name, a run folder, a .ckpt file, a pretrained folder or (``hf`` extra) a
    Hugging Face Hub repo id. Loading runs no code from any file."""
    from slotlab.zoo import UnknownModelError, resolve_model

    spec = str(name_or_path)
    try:
        path = resolve_model(spec)
    except UnknownModelError:
        if not _looks_like_hub_id(spec):
            raise
        path = _hub_download(spec)
    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt)
    return SlotModel(model, cfg, ckpt, name=spec)


# ----------------------------------------------------------------------------------------------------------
# helpers


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not Path(spec).exists()


def _hub_download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            f"{repo_id!r} is no zoo model or path; to load it from the Hugging Face Hub install the extra: "
            "pip install 'slotlab[hf]'"
        ) from None
    # only the three files of a slotlab folder: no pickles, no code
    return Path(snapshot_download(repo_id, allow_patterns=["config.json", "model.safetensors", "README.md"]))


def _is_prepared(x: Any, resolution: tuple[int, int]) -> bool:
    return (
        isinstance(x, Tensor)
        and x.is_floating_point()
        and x.dim() == 4
        and x.shape[1] == 3
        and tuple(x.shape[-2:]) == tuple(resolution)
        and (float(x.min()) < 0.0 or float(x.max()) > 1.0)
    )


def _to_uint8_groups(images: Any) -> list[np.ndarray]:
    """Any accepted image input -> uint8 arrays [n, H, W, 3], one per group of equal size (in input order)."""
    from PIL import Image

    from slotlab.segment import _to_rgb

    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageInputError("no images: the list is empty")
        out: list[np.ndarray] = []
        for i, im in enumerate(images):
            a = _to_rgb(im, []) if isinstance(im, Image.Image) else _array_to_uint8(im, f"images[{i}]", single=True)
            if out and out[-1].shape[1:] == a.shape:
                out[-1] = np.concatenate([out[-1], a[None]])  # same size as the previous: one group
            else:
                out.append(a[None])
        return out
    return [_array_to_uint8(images, "images", single=False)]


def _array_to_uint8(a: Any, what: str, single: bool) -> np.ndarray:
    """A numpy array / tensor of one image (``single``) or a batch -> uint8 [H, W, 3] / [B, H, W, 3]."""
    if isinstance(a, Tensor):
        a = a.detach().cpu()
        a = a.float().numpy() if a.is_floating_point() else a.numpy()
    if not isinstance(a, np.ndarray):
        raise ImageInputError(f"{what}: expected a PIL image, numpy array or torch tensor, got {type(a).__name__}")
    if a.dtype == bool or a.dtype.kind not in "uif":
        raise ImageInputError(f"{what}: pixel dtype {a.dtype} is not an image type (uint8 0..255 or float 0..1)")
    if a.ndim == 2 or (single and a.ndim == 3 and a.shape[0] not in (1, 3, 4) and a.shape[-1] not in (1, 3, 4)):
        a = a[..., None]  # greyscale [H, W]
    want = 3 if single else 4
    if a.ndim == want - 1 and not single:
        a = a[None]  # one image given as a batch
    if a.ndim != want:
        raise ImageInputError(
            f"{what}: expected {'[H, W, 3]' if single else '[B, H, W, 3] or [B, 3, H, W]'} pixels, got shape "
            f"{tuple(a.shape)}"
        )
    if a.shape[-1] not in (1, 3, 4) and a.shape[-3] in (1, 3, 4):
        a = np.moveaxis(a, -3, -1)  # channels first -> last
    if a.shape[-1] not in (1, 3, 4):
        raise ImageInputError(f"{what}: expected 1, 3 or 4 channels, got shape {tuple(a.shape)}")
    if a.size == 0:
        raise ImageInputError(f"{what}: empty (shape {tuple(a.shape)})")
    a = a[..., :3] if a.shape[-1] == 4 else (np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a)  # RGBA, grey -> RGB
    if a.dtype.kind == "f":
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if not np.isfinite(a).all():
            raise ImageInputError(f"{what}: holds NaN or Inf pixels")
        if lo < 0.0 or hi > 1.0:
            raise ImageInputError(
                f"{what}: float pixels must be in [0, 1] (got [{lo:.3g}, {hi:.3g}]); pass uint8 for 0..255, and "
                "model.preprocess's own output straight to the model"
            )
        return np.round(a * 255.0).astype(np.uint8)
    if a.min() < 0 or a.max() > 255:
        raise ImageInputError(f"{what}: integer pixels must be in 0..255 (got {a.min()}..{a.max()})")
    return a.astype(np.uint8)
