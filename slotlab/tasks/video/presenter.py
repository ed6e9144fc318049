"""How the video task is shown: video FG-ARI and mBO with the first frame included and excluded (named in every
line and row), per-frame FG-ARI as a diagnostic, the report's curves, and the animated figure of frames,
reconstructions and per-slot masks (``slotlab figures`` writes ``video_slots.gif`` and its still
``video_slots_still.png``; every validation draws the still).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slotlab.drawing import Animation, LabelledGrid
from slotlab.tasks.common import EVAL_SEED, EvalSetting, FigureOptions, figure_scale
from slotlab.tasks.presenter import LOSS_CURVE, LR_CURVE, Curve, Presenter, format_number
from slotlab.tasks.video.figures import video_animation
from slotlab.tasks.video.run import clip_scores

FIGURE = "video_slots.gif"

# (result key, how a line names it)
SCORES = (
    ("fg_ari_video_mean", "video FG-ARI (all frames)"),
    ("fg_ari_video_skip_first_mean", "video FG-ARI (first frame excluded)"),
    ("mbo_video_mean", "mBO (all frames)"),
    ("mbo_video_skip_first_mean", "mBO (first frame excluded)"),
    ("fg_ari_frame_mean", "per-frame FG-ARI"),
)


def slot_names(model: nn.Module, k: int) -> list[str] | None:
    """Legend labels of a conditional model's slots: the background slot, then one per first-frame object."""
    init = model.initializer
    if not init.conditional:
        return None
    first = 1 if init.prepend_background else 0
    names = ["slot 1: background"] if first else []
    return names + [f"slot {j + 1}: object {j + 1 - first}" for j in range(first, k)]


def shown_name(targets: Any) -> str:
    """The target a figure draws: RGB if the model reconstructs it, else the first (flow drawn as RGB)."""
    names = [name for name, _ in targets]
    return "rgb" if "rgb" in names else names[0]


def recon_title(model: nn.Module) -> str:
    name = shown_name(model.targets)
    return "Reconstruction" if name == "rgb" else f"Reconstruction ({name})"


def shown_target(out: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The reconstruction drawn [B, T, 3, H, W] (:func:`shown_name`) and its per-slot parts [B, T, K, 3, H, W]."""
    name, start = shown_name(out.targets), 0
    for key, c in out.targets:
        if key == name:
            break
        start += c
    return out.recon[:, :, start : start + 3], out.recons[:, :, :, start : start + 3]


class VideoPresenter(Presenter):
    figure_names = (FIGURE,)
    captions = {
        FIGURE: "Per frame: the frame, the ground-truth objects, the reconstruction, the argmax of the alpha masks and "
        "each slot's reconstruction times its mask; a slot keeps its colour over time",
        "video_slots_still.png": "Every frame of the first held-out clips (rows), columns as the animation",
    }

    @property
    def curves(self) -> tuple[Curve, ...]:
        return (
            LOSS_CURVE,
            Curve(
                "held-out video FG-ARI",
                ("val/fg_ari_video", "val/fg_ari_video_skip_first", "val/fg_ari_frame"),
                "FG-ARI",
                alternatives=False,
            ),
            Curve("held-out mBO", ("val/mbo_video", "val/mbo_video_skip_first"), "mBO", alternatives=False),
            Curve("held-out MSE (RGB)", ("val/mse_rgb",), "MSE", log_scale=True),
            LR_CURVE,
        )

    def _scores(self, result: dict[str, Any]) -> str:
        return ", ".join(f"{label} {format_number(result[key])}" for key, label in SCORES if key in result)

    def summary_items(self, results: dict[str, Any]) -> list[tuple[str, str]]:
        n = results.get("num_images")
        return [(f"held-out {label}", f"{format_number(results[key])} ({n} clips)") for key, label in SCORES
                if key in results]  # fmt: skip

    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        if "fg_ari_video_mean" not in result:
            return ""
        return f"last step on {result.get('num_images')} eval clips: {self._scores(result)}"

    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        k = f" K={setting.num_slots}" if setting.num_slots else ""
        return f"video{k}: {self._scores(result)} on {result.get('num_images')} {split} clips"

    def figures(
        self, model: nn.Module, cfg: dict[str, Any], data: dict[str, torch.Tensor], options: FigureOptions
    ) -> dict[str, Animation]:
        """The animated figure of the first held-out clips (``data``: the task's held-out tensors)."""
        model.eval()
        index = torch.arange(len(data["image"]))
        seed = EVAL_SEED if options.seed is None else options.seed
        _, out, video = clip_scores(
            model, data, index, cfg["eval"]["ari_undefined"], seed, options.num_slots, cfg["data"]["eval_slice"]
        )
        recon, recons = shown_target(out)
        k = out.masks.shape[2]
        s = figure_scale(tuple(video.shape[-2:])) if options.scale is None else int(options.scale)
        title = "SAVi slots over time" + "".join(f" · {p}" for p in (options.about, f"K={k}") if p)
        anim = video_animation(
            video.cpu(), recon.cpu(), out.masks.cpu(), recons.cpu(), s, title, data["mask"],
            slot_names(model, k), recon_title(model),
        )  # fmt: skip
        return {FIGURE: anim}

    def validation_figures(
        self, model: nn.Module, batch: dict[str, torch.Tensor], about: str
    ) -> dict[str, LabelledGrid]:
        """The still of the first validation clips (every frame a row)."""
        video, masks = batch["video"], batch["masks"]
        k = masks.shape[2]
        s = figure_scale(tuple(video.shape[-2:]))
        anim = video_animation(
            video, batch["recon"], masks, batch["recons"], s, f"SAVi slots · {about}", batch["mask"],
            slot_names(model, k), recon_title(model),
        )  # fmt: skip
        assert anim.still is not None
        return {"video_slots": anim.still}
