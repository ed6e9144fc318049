"""``slotlab segment clip.gif|frames/|clip.mp4 --model RUN_OR_ZOO`` with a video model: the video is read
(:func:`slotlab.data.video_files.read_video`), every frame prepared as ``slotlab segment`` prepares an image (the
largest centred square, resized to the model's size), the model runs on the clip in slices of its training length
with the slots carried over (as SAVi's evaluation) from a fixed slot-init noise, and three files are written:
``<stem>_figure.gif`` (frames, reconstruction, masks, each slot; colours stable over time), ``<stem>_masks.gif``
(the colour-coded argmax per frame) and ``<stem>_masks.npz`` (masks, labels, the prepared frames, the steps).

An unconditional model only: a conditional one starts from first-frame boxes, which a video file does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from slotlab.atomic import atomic_open
from slotlab.data.video_files import VideoInputError, read_video
from slotlab.drawing import Animation, checkpoint_label, gif_bytes
from slotlab.errors import UsageError
from slotlab.models.savi import SAVi
from slotlab.tasks.common import SegmentRequest, figure_scale
from slotlab.tasks.video.figures import video_animation
from slotlab.tasks.video.presenter import recon_title, shown_target
from slotlab.tasks.video.run import SAMPLED_INITS, clip_noise, run_clips
from slotlab.viz import slot_colors

MAX_FRAMES = 240  # frames segmented at most (the figure has one GIF frame per video frame)


def check(model: SAVi, cfg: dict[str, Any], num_slots: int | None, iters: int | None) -> None:
    """UsageError for a conditional model; ValueError for a K or T this model cannot run."""
    if model.conditional:
        raise UsageError(
            f"this video model starts its slots from first-frame {model.initializer.kind} (model.init), which a video "
            "file does not have; segment with an unconditional model (model.init learned, gaussian or "
            "standard_normal)"
        )
    if iters is not None:
        raise ValueError("--iters does not apply to a video model (its corrector runs model.corrector_iters per frame)")
    if num_slots is not None and model.initializer.kind not in SAMPLED_INITS:
        raise ValueError(f"--num-slots needs a sampled slot initialisation; this model's is {model.initializer.kind!r}")
    s = model.resolution
    run_clips(model, torch.zeros(1, 2, 3, *s), None, clip_noise(model, torch.zeros(1), num_slots, 0), num_slots)


def _write_npz(path: Path, arrays: dict[str, Any]) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


@torch.no_grad()
def segment_video(model: SAVi, cfg: dict[str, Any], request: SegmentRequest) -> dict[str, Any]:
    """Segment one video (module docstring); the result of :meth:`slotlab.tasks.base.Task.segment_file`."""
    path, out_dir, stem, num_slots = request.path, request.out_dir, request.stem, request.num_slots
    seed, formats, prepare, source = request.seed, request.formats, request.prepare, request.source
    try:
        frames, steps = read_video(path, MAX_FRAMES)
    except VideoInputError as e:
        raise VideoInputError(str(e).removeprefix(f"{path}: ")) from None  # the CLI names the input
    prepared, more = prepare(frames)  # [T, S, S, 3] uint8
    steps += [f"every frame: {step}" for step in more]
    model.eval()
    video = torch.from_numpy(np.ascontiguousarray(prepared)).permute(0, 3, 1, 2)[None]  # [1, T, 3, S, S] uint8
    x = video.to(next(model.parameters()).device).float().div(127.5).sub(1.0)
    noise = clip_noise(model, torch.zeros(1, dtype=torch.long), num_slots, seed)
    slice_len = cfg["data"].get("eval_slice") or cfg["data"]["num_frames"]
    out = run_clips(model, x, None, noise, num_slots, slice_len)
    t, k = out.masks.shape[1], out.masks.shape[2]
    steps.append(f"segmented {t} frames in slices of {slice_len}, the slots carried from slice to slice")
    recon, recons = shown_target(out)
    title = f"{path.name} · {checkpoint_label(source)} · K={k}"
    anim = video_animation(
        x.cpu(), recon.float().cpu(), out.masks.float().cpu(), recons.float().cpu(),
        figure_scale(tuple(x.shape[-2:])), title, recon_title=recon_title(model),
    )  # fmt: skip
    anim = Animation(anim.frames, anim.duration_ms)  # no still: a long video would make one very tall picture
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = anim.write(out_dir / f"{stem}_figure.gif", formats)
    labels = out.masks.argmax(dim=2)[0].cpu().numpy()  # [T, S, S]
    colours = (slot_colors(k)[labels] * 255).round().astype(np.uint8)  # [T, S, S, 3]
    up = figure_scale(tuple(x.shape[-2:]))
    colours = colours.repeat(up, axis=1).repeat(up, axis=2)  # [T, S * up, S * up, 3]
    masks_gif = out_dir / f"{stem}_masks.gif"
    with atomic_open(masks_gif, "wb") as f:
        f.write(gif_bytes(list(colours), anim.duration_ms))
    paths.append(masks_gif)
    paths.append(
        _write_npz(
            out_dir / f"{stem}_masks.npz",
            {
                "masks": out.masks[0].float().cpu().numpy().astype(np.float16),  # [T, K, S, S]
                "labels": labels.astype(np.int16),  # [T, S, S]
                "frames": prepared,  # [T, S, S, 3] uint8, the model's input before scaling to [-1, 1]
                "steps": np.array("\n".join(steps)),
                "model": np.array(source),
            },
        )
    )
    return {"steps": steps, "paths": paths, "num_slots": k, "iters": int(model.corrector.iters)}
