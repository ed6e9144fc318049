"""Running a SAVi model on clips as the video task does everywhere (validation, ``slotlab eval``, figures,
``slotlab segment``): the model built from a config, its input (first-frame boxes for a conditional model, fixed
slot-init noise for a sampled one), held-out clips in slices with the state carried over (SAVi's sliced
evaluation), the training target and the scores of a batch of clips.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slotlab.checks import EVAL_ADVICE, require_finite_output
from slotlab.metrics.video import video_metrics
from slotlab.models.savi import SAVi, SAViOutput
from slotlab.noise import index_noise
from slotlab.tasks.video.schema import SCHEMA

SAMPLED_INITS = ("gaussian", "standard_normal")  # initial slots drawn per clip: K may change, noise is fixed


def build_model(cfg: dict[str, Any], image_size: tuple[int, int]) -> SAVi:
    """The SAVi model of a config (its ``model`` keys are the constructor's; ``targets`` become their channels)."""
    m = cfg["model"]
    model = SAVi(
        resolution=image_size,
        targets={t: 3 for t in m["targets"]},
        max_boxes=cfg["data"]["max_objects"],  # absent_slots learned: one slot per box position
        **SCHEMA.model_kwargs(m),
    )
    model.loss_reduction = m["loss"]  # read by the task's loss (not a weight: checkpoints rebuild it from the config)
    return model


def model_input(model: SAVi, video_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, 3, H, W] -> float in [-1, 1] on the model's device."""
    device = next(model.parameters()).device
    return video_uint8.to(device).float().div_(127.5).sub_(1.0)


def init_kind(model: nn.Module) -> str:
    return model.initializer.kind


def clip_noise(model: SAVi, index: torch.Tensor, num_slots: int | None, seed: int) -> torch.Tensor | None:
    """Slot-init noise [B, K, D] of held-out clips ``index`` (a function of (seed, clip index)), for the sampled
    initialisations; None for the others."""
    if init_kind(model) not in SAMPLED_INITS:
        return None
    k = num_slots or model.initializer.num_slots
    return index_noise(seed, index.cpu(), k, model.slot_dim)


@torch.no_grad()
def run_clips(
    model: SAVi,
    video: torch.Tensor,
    boxes: torch.Tensor | None,
    noise: torch.Tensor | None = None,
    num_slots: int | None = None,
    slice_len: int | None = None,
) -> SAViOutput:
    """The model on clips ``video`` [B, T, 3, H, W] (model units): at once, or in slices of ``slice_len`` frames,
    each continuing from the previous slice's predicted state (SAVi's evaluation; the boxes of frame 0 start the
    first slice). Returns the outputs of all T frames concatenated over time."""
    t = video.shape[1]
    step = t if not slice_len else int(slice_len)
    cond = boxes if model.conditional else None
    outs: list[SAViOutput] = []
    state = None
    for start in range(0, t, step):  # the slices of a long clip: a few
        part = video[:, start : start + step]
        if state is None:
            out = model(part, conditioning=cond, num_slots=num_slots, noise=noise)
        else:
            out = model(part, state=state)
        outs.append(out)
        state = out.next_state
    if len(outs) == 1:
        return outs[0]
    return SAViOutput(
        slots=torch.cat([o.slots for o in outs], 1),
        predicted=torch.cat([o.predicted for o in outs], 1),
        init_slots=outs[0].init_slots,
        recon=torch.cat([o.recon for o in outs], 1),
        recons=torch.cat([o.recons for o in outs], 1),
        masks=torch.cat([o.masks for o in outs], 1),
        attn=torch.cat([o.attn for o in outs], 1),
        targets=outs[0].targets,
        entropy_weight=outs[0].entropy_weight,
    )


def target_of(out: SAViOutput, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
    """The training target [B, T, C, H, W] in the model's target order: ``rgb`` = the frames, ``flow`` = the flow
    drawn as RGB, both in [-1, 1]."""
    parts = []
    for name, _ in out.targets:
        parts.append(image if name == "rgb" else batch["flow"].to(image.device).float().div(127.5).sub(1.0))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


def clip_scores(
    model: SAVi,
    batch: dict[str, torch.Tensor],
    index: torch.Tensor,
    undefined: str,
    seed: int,
    num_slots: int | None = None,
    slice_len: int | None = None,
    where: str = "",
    advice: str = EVAL_ADVICE,
) -> tuple[dict[str, torch.Tensor], SAViOutput, torch.Tensor]:
    """Scores of held-out clips (``batch``: image uint8 [B, T, 3, H, W], mask [B, T, H, W], boxes), per clip:
    ``fg_ari_video`` / ``fg_ari_video_skip_first``, ``mbo_video`` / ``mbo_video_skip_first``, ``fg_ari_frame``
    (the mean of the per-frame FG-ARI over the frames where it is defined) and ``mse_rgb`` (with an RGB target).
    Returns (scores, outputs, the clips in model units)."""
    video = model_input(model, batch["image"])
    noise = clip_noise(model, index, num_slots, seed)
    out = run_clips(model, video, batch["boxes"].to(video.device), noise, num_slots, slice_len)
    require_finite_output(out.masks, "masks", where or "held-out clips", advice)
    labels = out.masks.argmax(dim=2)  # [B, T, H, W]
    scores = video_metrics(batch["mask"].to(labels.device).long(), labels, undefined=undefined)
    per_frame = scores.pop("fg_ari_per_frame")  # [B, T]
    scores["fg_ari_frame"] = per_frame.nanmean(dim=1)
    if any(name == "rgb" for name, _ in out.targets):
        scores["mse_rgb"] = ((out.target("rgb").float() - video) ** 2).mean(dim=(1, 2, 3, 4)).double()
    return scores, out, video
