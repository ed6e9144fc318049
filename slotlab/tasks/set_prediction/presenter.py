"""How set prediction is shown (paper Section 4.2): the AP table next to the paper's CLEVR10 numbers (Figure 5),
AP per threshold against the swept K / T / number of objects, the report's AP-per-threshold curves, and Figure 6
(the attention masks per slot and iteration) for ``slotlab figures`` and every validation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from slotlab.metrics.ari import undefined_note
from slotlab.metrics.average_precision import PAPER_THRESHOLDS
from slotlab.tasks.common import (
    EVAL_SEED,
    EvalSetting,
    FigureOptions,
    eval_noise,
    figure_scale,
    image_to_model,
    iters_note,
    slot_attention_of,
)
from slotlab.tasks.presenter import LR_CURVE, Curve, Presenter, format_number

if TYPE_CHECKING:
    from slotlab.drawing import LabelledGrid

# Paper Figure 5 (left), Slot Attention on CLEVR10, AP in % (mean over seeds); attention-mask ARI: Section 4.2.
PAPER_AP_CLEVR10 = {"inf": 94.3, "1": 86.7, "0.5": 56.0, "0.25": 10.8, "0.125": 0.9}
PAPER_ATTN_ARI_CLEVR10 = 78.0
FIGURE_NAMES = ("figure6_attention.png",)


def threshold_name(threshold: float) -> str:
    """-1 / inf -> "inf", 1.0 -> "1", 0.5 -> "0.5" (the suffix of the ``val/ap_*`` metrics)."""
    return "inf" if threshold == -1 or np.isposinf(threshold) else f"{threshold:g}"


def format_ap_table(result: dict[str, Any]) -> str:
    """One row per distance threshold: AP in % next to the paper's Slot Attention CLEVR10 value (Figure 5);
    then the attention-mask FG-ARI where it was measured."""
    lines = [f"{'threshold':>9}  {'AP (%)':>7}  {'paper SA CLEVR10 (%)':>20}"]
    for name, value in result["ap"].items():
        paper = PAPER_AP_CLEVR10.get(name)
        lines.append(f"{name:>9}  {100 * value:7.1f}  {'' if paper is None else f'{paper:.1f}':>20}")
    if "attn_ari_mean" in result:
        lines.append(
            f"attention-mask FG-ARI: {100 * result['attn_ari_mean']:.1f} +- {100 * result['attn_ari_std']:.1f} % "
            f"(paper CLEVR10: {PAPER_ATTN_ARI_CLEVR10:.1f} +- 2.9)"
            + undefined_note(result.get("attn_ari_undefined", 0))
        )
    t = f", T={result['iters']}" if result.get("iters") else ""
    lines.append(f"({result.get('num_images', '?')} images, K={result.get('num_slots', '?')}{t})")
    return "\n".join(lines)


def figure6_scale(resolution: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that the images of Figure 6 are drawn at least ~``target`` pixels tall (2 at least)."""
    return max(2, -(-target // max(1, min(resolution))))


class SetPredictionPresenter(Presenter):
    figure_names = FIGURE_NAMES
    captions = {
        "figure6_attention.png": "Figure 6: per image and iteration, the attention mask of each slot over the image"
    }
    curves = (
        Curve("training loss (Hungarian Huber)", ("train/loss",), "loss", log_scale=True),
        Curve(
            "held-out AP per distance threshold",
            tuple(f"val/ap_{threshold_name(th)}" for th in PAPER_THRESHOLDS),
            "AP",
            alternatives=False,
        ),
        Curve("held-out loss (Hungarian Huber)", ("val/loss",), "loss", log_scale=True),
        Curve("held-out attention-mask FG-ARI", ("val/attn_ari",), "FG-ARI"),
        Curve("images with undefined attention ARI (skipped)", ("val/attn_ari_undefined",), "images"),
        LR_CURVE,
    )

    # ------------------------------------------------------------------ report
    def summary_items(self, results: dict[str, Any]) -> list[tuple[str, str]]:
        if "ap_inf" not in results:
            return []
        aps = ", ".join(
            f"{k.removeprefix('ap_')} {format_number(v)}" for k, v in results.items() if k.startswith("ap_")
        )
        return [("held-out AP per distance threshold", f"{aps} ({results.get('num_images')} images)")]

    def sweep_args(self, cfg: dict[str, Any]) -> list[str]:
        """T for Slot Attention (K is the variant's number of target rows); objects for the Slot MLP baseline."""
        if cfg["model"].get("kind") == "slot_mlp":
            return ["--objects 3,4,5,6"]
        return ["--iters 1,2,3,5"]

    # ------------------------------------------------------------------ slotlab train / eval
    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        note = iters_note(cfg).removeprefix("; ")
        head = f"last step on {result.get('num_images')} eval images\n"
        return head + format_ap_table(result) + (f"\n{note}" if note else "")

    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        # a CLEVR v1.0 folder (--data-path) is read from its val scenes, which `--split eval` names
        where = "data=CLEVR folder (val scenes)" if result.get("source") == "clevr_folder" else f"split={split}"
        head = (
            f"K={setting.num_slots or result['num_slots']} T={result.get('iters') or '-'} "
            f"objects={setting.objects or 'all'} {where}"
        )
        return head + "\n" + format_ap_table(result)

    def eval_record(self, result: dict[str, Any], setting: EvalSetting, cfg: dict[str, Any]) -> dict[str, Any]:
        return {
            "variant": result["variant"],
            "num_images": result["num_images"],
            "num_slots": result["num_slots"],
            "iters": result.get("iters"),
            "objects": setting.objects,
            **{key: v for key, v in result.items() if key.startswith("ap_") or key.startswith("attn_ari")},
        }

    def eval_file_row(self, result: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        return result

    def plot_sweep(self, rows: list[dict[str, Any]], png: Path, cfg: dict[str, Any]) -> Path:
        from slotlab.plots import plot_ap_sweep

        return plot_ap_sweep(rows, png)

    # ------------------------------------------------------------------ figures
    def figure_problem(self, cfg: dict[str, Any]) -> str | None:
        if cfg["model"]["kind"] == "slot_mlp":
            return "slotlab figures draws attention maps; the Slot MLP baseline has none"
        return None

    @torch.no_grad()
    def figures(
        self, model: nn.Module, cfg: dict[str, Any], data: dict[str, torch.Tensor], options: FigureOptions
    ) -> dict[str, LabelledGrid]:
        """Paper Figure 6: per held-out image and iteration, the attention mask of every slot over the image."""
        from slotlab.viz import figure6_grid

        if slot_attention_of(model) is None:
            raise ValueError("a Slot MLP model has no attention maps to draw")
        image = image_to_model(data["image"], channels_last=False)  # [B, 3, S, S]
        seed = EVAL_SEED if options.seed is None else options.seed
        noise = eval_noise(model, torch.arange(len(image)), options.num_slots, seed)
        out = model(image, num_slots=options.num_slots, iters=options.iters, noise=noise)
        _, t, k, _ = out.attn.shape
        tail = "".join(f" · {p}" for p in (options.about, f"K={k}, T={t}") if p)
        title = f"Figure 6: attention masks per iteration{tail}"
        s = figure6_scale(model.resolution) if options.scale is None else int(options.scale)
        return {FIGURE_NAMES[0]: figure6_grid(image, out.attn, model.encoder.feature_resolution, s, title)}

    def validation_figures(
        self, model: nn.Module, batch: dict[str, torch.Tensor], about: str
    ) -> dict[str, LabelledGrid]:
        """``attention``: the attention masks per iteration of the first 2 images (Figure 6); none for the Slot MLP
        baseline (no attention maps)."""
        from slotlab.viz import figure6_grid

        if slot_attention_of(model) is None:
            return {}
        n = 2
        s = max(2, figure_scale(tuple(batch["image"].shape[-2:])))
        _, t, k, _ = batch["attn"].shape
        title = f"attention masks per iteration · {about} · K={k}, T={t}"
        grid = model.encoder.feature_resolution
        return {"attention": figure6_grid(batch["image"][:n], batch["attn"][:n], grid, s, title)}

    def validation_figure_files(self, tag: str, step: int) -> list[str]:
        return [f"attention_step_{step:07d}.png", "attention_latest.png"]
