"""How object discovery is shown (paper Section 4.1): FG-ARI lines and rows, the FG-ARI sweep plot (Figure 2 right),
the report's curves and summary, Figure 3 ((a) slots, (b) attention per iteration, (c) per-iteration
reconstructions from the same initial slots) for ``slotlab figures``, and the slots / attention figures of every
validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from slotlab.metrics.ari import undefined_note
from slotlab.tasks.common import (
    EvalSetting,
    FigureOptions,
    eval_iters,
    figure_scale,
    image_to_model,
    iters_note,
    slot_attention_of,
)
from slotlab.tasks.presenter import LR_CURVE, Curve, Presenter, format_number
from slotlab.torch_workarounds import standard_normal
from slotlab.viz import attention_grid, discovery_grid, iterations_grid

if TYPE_CHECKING:
    from slotlab.drawing import LabelledGrid
    from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel

FIGURE_SEED = 0
FIGURE_NAMES = ("figure3a_slots.png", "figure3b_attention.png", "figure3c_iterations.png")


@torch.no_grad()
def per_iteration_outputs(
    model: ObjectDiscoveryModel, image: torch.Tensor, num_slots: int | None, iters: int, seed: int = FIGURE_SEED
) -> dict[str, list[torch.Tensor] | torch.Tensor]:
    """Run the model on ``image`` [B, 3, H, W] (model units) once per number of iterations t = 1..``iters``,
    every time from the same initial slots, through its own forward (in its mode): so the masks drawn are the ones
    it is scored on, whatever its options (masks that follow the attention, merged slots, kept slots, slot frames,
    a spatial prior at evaluation).

    Returns ``attn`` [B, T, K, N] of the full T-iteration run, and lists (one entry per t) of ``recon``
    [B, 3, H, W], ``recons`` [B, K, 3, H, W] and ``masks`` [B, K, 1, H, W].
    """
    sa = model.slot_attention
    b = image.shape[0]
    gen = torch.Generator(device=image.device).manual_seed(seed)
    k = num_slots or sa.num_slots
    # The initial slots' noise [B, K, D] (and frames' where the module draws them), sampled once.
    noise = standard_normal((b, k, sa.noise_dim), image.device, sa.slots_mu.dtype, gen)
    recon, recons, masks = [], [], []
    attn = None
    for t in range(1, iters + 1):  # a few iterations: one forward each
        out = model(image, iters=t, noise=noise)  # after t iterations, from the same initial slots
        recon.append(out.recon)  # [B, 3, H, W]
        recons.append(out.recons)  # [B, K, 3, H, W]
        masks.append(out.masks)  # [B, K, 1, H, W]
        attn = out.attn  # [B, t, K, N]; the last one covers all T iterations
    return {"attn": attn, "recon": recon, "recons": recons, "masks": masks}


def default_scale(resolution: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that small images (35x35 Tetrominoes) are drawn at least ~``target`` pixels tall."""
    return max(1, math.ceil(target / max(1, min(resolution))))


def centre_line(result: dict[str, Any]) -> str:
    """The object-centre separation of an evaluation on a CLEVR folder (:mod:`slotlab.metrics.centre_separation`)
    in one line: the share, the counts behind it and what was left out."""
    frac = result["centre_separation"]
    share = "undefined (no object centre inside the images)" if math.isnan(frac) else f"{100 * frac:.1f} %"
    text = (
        f"object-centre separation: {share} of {result['centre_counted']} objects in {result['num_images']} "
        f"images ({result['centre_in_background']} in the background slot, {result['centre_shared']} sharing a slot"
    )
    if n := result.get("centre_outside"):
        text += f"; {n} centre{'s' if n > 1 else ''} outside the crop, not counted"
    if n := result.get("scenes_skipped"):
        text += f"; {n} scene{'s' if n > 1 else ''} with more than {result['max_objects']} objects left out"
    return text + ")"


def attention_note(result: dict[str, Any]) -> str:
    """The attention masks' FG-ARI (a diagnostic: the paper's Table 1 scores the decoder masks), when measured."""
    if "attn_fg_ari_mean" not in result:
        return ""
    return (
        f"; attention masks (diagnostic, not the paper's decoder-mask protocol): {result['attn_fg_ari_mean']:.4f}"
        f" +- {result['attn_fg_ari_std']:.4f}"
    )


class ObjectDiscoveryPresenter(Presenter):
    figure_names = FIGURE_NAMES
    captions = {
        FIGURE_NAMES[0]: "Figure 3a: image | reconstruction | combined mask | per-slot reconstruction x alpha",
        FIGURE_NAMES[1]: "Figure 3b: attention masks per iteration (rows) and slot (columns)",
        FIGURE_NAMES[2]: "Figure 3c: reconstructions and masks after each iteration, same initial slots",
    }
    curves = (
        Curve("training loss (MSE)", ("train/loss",), "loss", log_scale=True),
        Curve("held-out FG-ARI", ("val/fg_ari",), "FG-ARI", band="val/fg_ari_std"),
        Curve("held-out reconstruction MSE", ("val/mse",), "MSE", log_scale=True),
        Curve("layout ARI between images (failed-seed check)", ("val/layout_ari",), "ARI"),
        Curve("images with undefined FG-ARI (skipped)", ("val/fg_ari_undefined",), "images"),
        LR_CURVE,
    )

    # ------------------------------------------------------------------ report
    def summary_items(self, results: dict[str, Any]) -> list[tuple[str, str]]:
        if "fg_ari_mean" not in results:
            return []
        undefined = results.get("fg_ari_undefined")
        skipped = f", {undefined} with undefined ARI skipped" if undefined else ""
        text = (
            f"{format_number(results['fg_ari_mean'])} +- {format_number(results.get('fg_ari_std'))} "
            f"({results.get('num_images')} images{skipped})"
        )
        return [("held-out FG-ARI", text)]

    def sweep_args(self, cfg: dict[str, Any]) -> list[str]:
        """T for Slot Attention, and K where it is free (the shared learned Gaussian); none for the Slot MLP."""
        model = cfg["model"]
        if model.get("kind") == "slot_mlp":
            return []
        args = ["--iters 1,2,3,5"]
        k = model.get("num_slots")
        if (model.get("slot_attention") or {}).get("slot_init") == "shared" and isinstance(k, int):
            args.append(f"--num-slots {k},{k + 2}")  # K is free only with the shared learned Gaussian
        return args

    # ------------------------------------------------------------------ slotlab train / eval
    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        k = setting.num_slots if setting.num_slots is not None else cfg["model"]["num_slots"]
        t = setting.iters if setting.iters is not None else "-"
        if "centre_separation" in result:
            return f"K={k} T={t}: {centre_line(result)}"
        return (
            f"FG-ARI K={k} T={t} on {result['num_images']} {split} images of {cfg['data']['name']}: "
            f"{result['fg_ari_mean']:.4f} +- {result['fg_ari_std']:.4f} (median {result['fg_ari_median']:.4f})"
            f"{undefined_note(result['fg_ari_undefined'])}{merge_note(cfg)}{prior_note(cfg)}{attention_note(result)}"
        )

    def eval_record(self, result: dict[str, Any], setting: EvalSetting, cfg: dict[str, Any]) -> dict[str, Any]:
        k = setting.num_slots if setting.num_slots is not None else cfg["model"]["num_slots"]
        return {"num_slots": k, "iters": setting.iters, **result}

    def plot_sweep(self, rows: list[dict[str, Any]], png: Path, cfg: dict[str, Any]) -> Path:
        from slotlab.plots import plot_sweep

        if "centre_separation" in rows[0]:  # a CLEVR folder: no masks, the object-centre separation
            return plot_sweep(rows, png, metric="centre_separation", title="object-centre separation")
        return plot_sweep(rows, png, metric="fg_ari_mean", title=f"{cfg['data']['name']}: FG-ARI")

    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        if "fg_ari_mean" not in result:
            return ""
        return (
            f"FG-ARI of the last step on {result['num_images']} eval images of {cfg['data']['name']}: "
            f"{result['fg_ari_mean']:.4f} +- {result['fg_ari_std']:.4f}"
            f"{undefined_note(result.get('fg_ari_undefined', 0))}{merge_note(cfg)}{prior_note(cfg)}{iters_note(cfg)} "
            f"(step {result['global_step']}, {result['train_seconds'] / 60:.1f} min training, "
            f"{result['wall_seconds'] / 60:.1f} min wall, precision {result['precision']})"
        )

    # ------------------------------------------------------------------ figures
    def validation_figures(
        self, model: nn.Module, batch: dict[str, torch.Tensor], about: str
    ) -> dict[str, LabelledGrid]:
        """``slots`` (Image | Reconstruction | Mask | Slot k) and, for Slot Attention, ``attention`` (attention per
        iteration, first 2 images; the Slot MLP baseline has no attention maps)."""
        s = figure_scale(tuple(batch["image"].shape[-2:]))
        k = batch["masks"].shape[1]
        out = {
            "slots": discovery_grid(
                batch["image"], batch["recon"], batch["masks"], batch["recons"], s, f"slots · {about} · K={k}"
            )
        }
        if slot_attention_of(model) is not None:
            grid = model.encoder.feature_resolution
            t = batch["attn"].shape[1]
            title = f"attention per iteration · {about} · K={k}, T={t}"
            out["attention"] = attention_grid(batch["image"][:2], batch["attn"][:2], grid, s, title)
        return out

    def validation_figure_files(self, tag: str, step: int) -> list[str]:
        return [f"step_{step:07d}.png", "latest.png"] if tag == "slots" else [f"attention_step_{step:07d}.png"]

    def figures(
        self, model: nn.Module, cfg: dict[str, Any], data: dict[str, torch.Tensor], options: FigureOptions
    ) -> dict[str, LabelledGrid]:
        """Paper Figure 3 (a) slots, (b) attention per iteration, (c) per-iteration reconstructions from the same
        initial slots (the model is trained to reconstruct after the last iteration only). A model without Slot
        Attention (the Slot MLP baseline) gets (a) only."""
        seed = FIGURE_SEED if options.seed is None else options.seed
        t_iters = eval_iters(cfg) if options.iters is None else int(options.iters)
        if t_iters < 1:
            raise ValueError(f"iters must be >= 1, got {t_iters}")
        image = image_to_model(data["image"], channels_last=False)  # [B, 3, H, W] in [-1, 1]
        s = default_scale(model.resolution) if options.scale is None else int(options.scale)
        k = options.num_slots or cfg["model"]["num_slots"]
        tail = "".join(f" · {part}" for part in (options.about, f"K={k}") if part)
        if slot_attention_of(model) is None:
            with torch.no_grad():
                out_a = model(image, num_slots=options.num_slots)
            title = f"Figure 3a: slots{tail}, Slot MLP"
            return {FIGURE_NAMES[0]: discovery_grid(image, out_a.recon, out_a.masks, out_a.recons, s, title)}
        res = per_iteration_outputs(model, image, options.num_slots, t_iters, seed)
        recon, recons, masks = res["recon"][-1], res["recons"][-1], res["masks"][-1]  # after T iterations
        kt = f"{tail}, T={t_iters}"
        grid = model.encoder.feature_resolution
        return {
            FIGURE_NAMES[0]: discovery_grid(image, recon, masks, recons, s, f"Figure 3a: slots{kt}"),
            FIGURE_NAMES[1]: attention_grid(image, res["attn"], grid, s, f"Figure 3b: attention per iteration{kt}"),
            FIGURE_NAMES[2]: iterations_grid(
                image, res["recon"], res["masks"], res["recons"], s, f"Figure 3c: outputs after each iteration{kt}"
            ),
        }


def prior_note(cfg: dict[str, Any]) -> str:
    """``; spatial prior 0.3 at evaluation (model.eval_spatial_prior; not the paper's)`` where the key is set."""
    w = cfg["model"].get("eval_spatial_prior")
    return "" if w is None else f"; spatial prior {w:g} at evaluation (model.eval_spatial_prior; not the paper's)"


def merge_note(cfg: dict[str, Any]) -> str:
    """``; near-copy slots merged (model.merge_slots 0.97; not the paper's protocol)`` where the option is on."""
    tau = cfg["model"].get("merge_slots")
    return "" if tau is None else f"; near-copy slots merged (model.merge_slots {tau:g}; not the paper's protocol)"
