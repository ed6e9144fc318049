"""Task 'object_discovery': the unsupervised Slot Attention autoencoder (paper Sections 2.2 and 4.1; Figure 3;
Table 1), and its Slot MLP baseline. MSE reconstruction loss; held-out FG-ARI (DeepMind's semantics), MSE and the
layout ARI of failed-seed detection at every validation; Figure 3 (slots, attention per iteration, per-iteration
reconstructions); learning curves of the loss and FG-ARI in the report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from slotlab.checks import EVAL_ADVICE, TRAIN_ADVICE, require_finite_output
from slotlab.data.registry import get_dataset
from slotlab.defaults import OBJECT_DISCOVERY
from slotlab.metrics.ari import fg_ari, layout_ari, nan_summary, undefined_note
from slotlab.models.object_discovery import ObjectDiscoveryModel
from slotlab.models.slot_mlp import build_object_discovery_slot_mlp
from slotlab.noise import index_noise
from slotlab.tasks.base import (
    DEFAULT_OPTIONS,
    DEFAULT_SETTING,
    EVAL_SEED,
    Curve,
    EvalOptions,
    EvalSetting,
    Task,
    figure_scale,
    image_to_model,
    run_model,
    slot_attention_of,
    slot_shape,
)
from slotlab.viz import attention_grid, discovery_grid, iterations_grid

if TYPE_CHECKING:
    import lightning as L

    from slotlab.drawing import LabelledGrid

FIGURE_SEED = 0
FIGURE_NAMES = ("figure3a_slots.png", "figure3b_attention.png", "figure3c_iterations.png")


def build_model(model_cfg: dict[str, Any], image_size: tuple[int, int]) -> nn.Module:
    """The object-discovery model a config's ``model`` section describes (``kind``: slot_attention | slot_mlp)."""
    if model_cfg["kind"] == "slot_mlp":
        return build_object_discovery_slot_mlp(model_cfg, image_size)
    if model_cfg["kind"] != "slot_attention":
        raise ValueError(f"model.kind must be slot_attention or slot_mlp, got {model_cfg['kind']!r}")
    return ObjectDiscoveryModel(
        resolution=image_size,
        num_slots=model_cfg["num_slots"],
        iters=model_cfg["iters"],
        slot_dim=model_cfg["slot_dim"],
        mlp_hidden=model_cfg["mlp_hidden"],
        encoder_channels=model_cfg["encoder_channels"],
        decoder=model_cfg["decoder"],
        decoder_channels=model_cfg["decoder_channels"],
        position_embedding=model_cfg["position_embedding"],
        factorize_decoder=model_cfg["factorize_decoder"],
        layer_norm_eps=model_cfg["layer_norm_eps"],
        slot_attention=dict(model_cfg["slot_attention"]),
        decoder_frame=model_cfg["decoder_frame"],
    )


@torch.no_grad()
def evaluate_fg_ari(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int = 64,
    num_slots: int | None = None,
    iters: int | None = None,
    channels_last: bool = False,
    seed: int = EVAL_SEED,
    undefined: str = "nan",
) -> np.ndarray:
    """FG-ARI per image of ``model`` on uint8 images [N, 3, H, W] and int masks [N, H, W] (NaN where undefined,
    with ``undefined="nan"``, DeepMind's semantics)."""
    model.eval()
    k, d = slot_shape(model, num_slots)
    device = images.device
    scores = []
    for start in range(0, len(images), batch_size):
        image = image_to_model(images[start : start + batch_size], channels_last)
        noise = index_noise(seed, torch.arange(start, start + len(image)), k, d).to(device)
        out = run_model(model, image, noise, iters=iters) if k else model(image, num_slots=num_slots, iters=iters)
        where = f"held-out images {start}..{start + len(image) - 1}"
        require_finite_output(out.masks, "masks", where, EVAL_ADVICE)  # NonFiniteOutputError, never a score
        scores.append(fg_ari(masks[start : start + batch_size].long(), out.masks, undefined))
    return torch.cat(scores).cpu().numpy()


def summarize(scores: np.ndarray) -> dict[str, float]:
    """Mean / std / median over the images where FG-ARI is defined, and the count of undefined (skipped) ones."""
    s = nan_summary(scores, prefix="fg_ari")
    ok = scores[~np.isnan(scores)]
    s["frac_above_0.9"] = float(np.mean(ok > 0.9)) if len(ok) else math.nan
    return s


@torch.no_grad()
def per_iteration_outputs(
    model: ObjectDiscoveryModel, image: torch.Tensor, num_slots: int | None, iters: int, seed: int = FIGURE_SEED
) -> dict[str, list[torch.Tensor] | torch.Tensor]:
    """Run the model on ``image`` [B, 3, H, W] (model units) once per number of iterations t = 1..``iters``,
    every time from the same initial slots, and decode each result.

    Returns ``attn`` [B, T, K, N] of the full T-iteration run, and lists (one entry per t) of ``recon``
    [B, 3, H, W], ``recons`` [B, K, 3, H, W] and ``masks`` [B, K, 1, H, W].
    """
    sa = model.slot_attention
    b = image.shape[0]
    inputs = model.encoder(image)  # [B, N, D]
    gen = torch.Generator(device=inputs.device).manual_seed(seed)
    init = sa.initial_slots(b, num_slots, generator=gen).to(inputs.dtype)  # [B, K, D], sampled once
    recon, recons, masks = [], [], []
    attn = None
    for t in range(1, iters + 1):
        out = sa(inputs, iters=t, slots=init)  # slots [B, K, D] after t iterations
        dec = model.decoder(out.slots)
        recon.append(dec.recon)  # [B, 3, H, W]
        recons.append(dec.recons)  # [B, K, 3, H, W]
        masks.append(dec.masks)  # [B, K, 1, H, W]
        attn = out.attn  # [B, t, K, N]; the last one covers all T iterations
    return {"attn": attn, "recon": recon, "recons": recons, "masks": masks}


def default_scale(resolution: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that small images (35x35 Tetrominoes) are drawn at least ~``target`` pixels tall."""
    return max(1, math.ceil(target / max(1, min(resolution))))


class ObjectDiscovery(Task):
    name = "object_discovery"
    defaults = OBJECT_DISCOVERY
    monitor = "val/fg_ari"
    best_name = "best-step{step:07d}-fgari{val/fg_ari:.4f}"
    score = ("FG-ARI", "fg_ari_mean")
    curves = (
        Curve("training loss (MSE)", ("train/loss",), "loss", log_scale=True),
        Curve("held-out FG-ARI", ("val/fg_ari",), "FG-ARI", band="val/fg_ari_std"),
        Curve("held-out reconstruction MSE", ("val/mse",), "MSE", log_scale=True),
        Curve("layout ARI between images (failed-seed check)", ("val/layout_ari",), "ARI"),
        Curve("images with undefined FG-ARI (skipped)", ("val/fg_ari_undefined",), "images"),
        Curve("learning rate", ("train/lr", "lr-Adam"), "lr"),
    )
    figure_names = FIGURE_NAMES
    failed_seed_metric = "val/layout_ari"

    # ------------------------------------------------------------------ model and data
    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        return tuple(get_dataset(cfg["data"]["name"]).image_size)

    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        return build_model(cfg["model"], tuple(image_size or self.image_size(cfg)))

    def datamodule(self, cfg: dict[str, Any]) -> L.LightningDataModule:
        from slotlab.data.datamodule import data_from_config  # a Lightning DataModule: imported when data is needed

        return data_from_config(cfg["data"])

    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        """image uint8 [n, 3, H, W], mask uint8 [n, H, W]: generated, from the cache or from ``data.path``."""
        from slotlab.data.datamodule import data_from_config, to_tensors

        return to_tensors(data_from_config(data_cfg).load_split(split, count))

    # ------------------------------------------------------------------ training
    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return model.loss(out, image)

    def validation_step(self, module: L.LightningModule, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        image = image_to_model(batch["image"], module.channels_last)
        noise = index_noise(EVAL_SEED, batch["index"], *slot_shape(module.model)).to(module.device)
        out = run_model(module.model, image, noise)
        store = module.val_store
        undefined = module.config["eval"]["ari_undefined"]
        where = f"validation batch {batch_idx} at step {module.global_step}"
        require_finite_output(out.masks, "masks", where, TRAIN_ADVICE)
        store.setdefault("scores", []).append(fg_ari(batch["mask"].long(), out.masks, undefined))
        store.setdefault("mse", []).append(((out.recon - image) ** 2).mean(dim=(1, 2, 3)))
        store.setdefault("index", []).append(batch["index"])
        store.setdefault("layout", []).append(layout_ari(out.masks).reshape(1))
        if batch_idx == 0:
            n = module.config["trainer"]["num_figure_images"]
            module.last_val_batch = {
                "image": image[:n].detach().cpu(),
                "recon": out.recon[:n].detach().cpu(),
                "masks": out.masks[:n].detach().cpu(),
                "recons": out.recons[:n].detach().cpu(),
                "attn": out.attn[:n].detach().cpu(),
            }

    def validation_end(self, module: L.LightningModule) -> None:
        store = module.val_store
        scores = torch.cat(store["scores"]).float()
        mse = torch.cat(store["mse"]).float()
        index = torch.cat(store["index"]).long()
        layout = torch.cat(store["layout"]).nanmean()
        if module.trainer.world_size > 1:
            # Gather every process's per-image scores; the distributed sampler pads shards by repeating
            # images, so keep each image once. Every process then logs the same full-set numbers.
            scores, mse, index = (module.all_gather(t).flatten() for t in (scores, mse, index))
            order = torch.argsort(index, stable=True)
            index, scores, mse = index[order], scores[order], mse[order]
            first = torch.ones_like(index, dtype=torch.bool)
            first[1:] = index[1:] != index[:-1]
            scores, mse = scores[first], mse[first]
        # Means over the images where FG-ARI is defined; the undefined (NaN) ones are counted.
        defined = scores[~scores.isnan()]
        nan = scores.new_tensor(float("nan"))
        module.log("val/fg_ari", defined.mean() if len(defined) else nan, prog_bar=True)
        module.log("val/fg_ari_std", defined.std(unbiased=False) if len(defined) else nan)
        module.log("val/fg_ari_undefined", float(len(scores) - len(defined)))
        module.log("val/mse", mse.mean())
        module.log("val/layout_ari", layout, sync_dist=True)

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

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self,
        model: nn.Module,
        data: dict[str, torch.Tensor],
        cfg: dict[str, Any],
        setting: EvalSetting = DEFAULT_SETTING,
        options: EvalOptions = DEFAULT_OPTIONS,
    ) -> dict[str, Any]:
        device = next(model.parameters()).device
        scores = evaluate_fg_ari(
            model,
            data["image"].to(device),
            data["mask"].to(device),
            options.batch_size or cfg["data"]["eval_batch_size"],
            setting.num_slots,
            setting.iters,
            channels_last=options.channels_last,
            seed=options.seed,
            undefined=options.ari_undefined or cfg["eval"]["ari_undefined"],
        )
        return summarize(scores)

    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        mlp = cfg["model"]["kind"] == "slot_mlp"
        ks = num_slots or [cfg["model"]["num_slots"]]
        ts: list[int | None] = [None] if mlp else (iters or [cfg["model"]["iters"]])
        grid = [EvalSetting(None if mlp else k, t) for k in ks for t in ts]
        return grid, ks, ts

    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        k = setting.num_slots if setting.num_slots is not None else cfg["model"]["num_slots"]
        t = setting.iters if setting.iters is not None else "-"
        return (
            f"FG-ARI K={k} T={t} on {result['num_images']} {split} images of {cfg['data']['name']}: "
            f"{result['fg_ari_mean']:.4f} +- {result['fg_ari_std']:.4f} (median {result['fg_ari_median']:.4f})"
            f"{undefined_note(result['fg_ari_undefined'])}"
        )

    def eval_record(self, result: dict[str, Any], setting: EvalSetting, cfg: dict[str, Any]) -> dict[str, Any]:
        k = setting.num_slots if setting.num_slots is not None else cfg["model"]["num_slots"]
        return {"num_slots": k, "iters": setting.iters, **result}

    def plot_sweep(self, rows: list[dict[str, Any]], png: Path, cfg: dict[str, Any]) -> Path:
        from slotlab.plots import plot_sweep

        return plot_sweep(rows, png, metric="fg_ari_mean", title=f"{cfg['data']['name']}: FG-ARI")

    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        if "fg_ari_mean" not in result:
            return ""
        return (
            f"FG-ARI on {result['num_images']} held-out {cfg['data']['name']} images: "
            f"{result['fg_ari_mean']:.4f} +- {result['fg_ari_std']:.4f}"
            f"{undefined_note(result.get('fg_ari_undefined', 0))} "
            f"(step {result['global_step']}, {result['train_seconds'] / 60:.1f} min training, "
            f"{result['wall_seconds'] / 60:.1f} min wall, precision {result['precision']})"
        )

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": cfg["data"]["name"]}

    # ------------------------------------------------------------------ figures
    def figure_grids(
        self,
        model: nn.Module,
        cfg: dict[str, Any],
        data: dict[str, torch.Tensor],
        about: str = "",
        num_slots: int | None = None,
        iters: int | None = None,
        seed: int | None = None,
        scale: int | None = None,
    ) -> dict[str, LabelledGrid]:
        """Paper Figure 3 (a) slots, (b) attention per iteration, (c) per-iteration reconstructions from the same
        initial slots (the model is trained to reconstruct after the last iteration only). A model without Slot
        Attention (the Slot MLP baseline) gets (a) only."""
        seed = FIGURE_SEED if seed is None else seed
        t_iters = cfg["model"]["iters"] if iters is None else int(iters)
        if t_iters < 1:
            raise ValueError(f"iters must be >= 1, got {t_iters}")
        image = image_to_model(data["image"], channels_last=False)  # [B, 3, H, W] in [-1, 1]
        s = default_scale(model.resolution) if scale is None else int(scale)
        k = num_slots or cfg["model"]["num_slots"]
        tail = "".join(f" · {part}" for part in (about, f"K={k}") if part)
        if slot_attention_of(model) is None:
            with torch.no_grad():
                out_a = model(image, num_slots=num_slots)
            title = f"Figure 3a: slots{tail}, Slot MLP"
            return {FIGURE_NAMES[0]: discovery_grid(image, out_a.recon, out_a.masks, out_a.recons, s, title)}
        res = per_iteration_outputs(model, image, num_slots, t_iters, seed)
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
