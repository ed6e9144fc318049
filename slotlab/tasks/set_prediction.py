"""Task 'set_prediction': supervised object property prediction (paper Sections 2.3 and 4.2; Figures 5 and 6).

The model (Slot Attention or the Slot MLP baseline) is trained with the Hungarian-matched Huber loss, Adam and the
reference schedule (CLEVR10: batch 512, lr 4e-4, 150k steps, warmup 1k, decay 0.5 per 50k steps). Every
validation logs the object-level AP at the paper's distance thresholds (``val/ap_inf``, ``val/ap_1``,
``val/ap_0.5``, ``val/ap_0.25``, ``val/ap_0.125``) and, where ground-truth instance masks exist (procedural
data), the FG-ARI of the last iteration's attention masks on the encoder grid (32x32 in the paper; masks
downsampled with nearest) as ``val/attn_ari``; Figure 6 draws the attention masks per slot and iteration; the
report draws AP per threshold over steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from slotlab.checks import EVAL_ADVICE, TRAIN_ADVICE, require_finite_output
from slotlab.defaults import SET_PREDICTION
from slotlab.errors import ConfigError
from slotlab.metrics.ari import fg_ari, nan_summary, undefined_note
from slotlab.metrics.average_precision import PAPER_THRESHOLDS, average_precision_table
from slotlab.models.set_prediction import SetPredictionModel, SetPredictionOutput
from slotlab.models.slot_mlp import SetPredictionSlotMLP
from slotlab.tasks.base import (
    DEFAULT_OPTIONS,
    DEFAULT_SETTING,
    EVAL_SEED,
    Curve,
    EvalOptions,
    EvalSetting,
    Task,
    eval_noise,
    figure_scale,
    image_to_model,
    slot_attention_of,
)
from slotlab.viz import figure6_grid

if TYPE_CHECKING:
    import lightning as L

    from slotlab.drawing import LabelledGrid

# slotlab.data.set_prediction_data defines the task's Lightning DataModule: it is imported where data is needed, so
# that importing the task (to build or load a model) does not load Lightning.

# Paper Figure 5 (left), Slot Attention on CLEVR10, AP in % (mean over seeds); attention-mask ARI: Section 4.2.
PAPER_AP_CLEVR10 = {"inf": 94.3, "1": 86.7, "0.5": 56.0, "0.25": 10.8, "0.125": 0.9}
PAPER_ATTN_ARI_CLEVR10 = 78.0
FIGURE_NAMES = ("figure6_attention.png",)
EVAL_KEYS = ("image", "target", "mask", "num_objects")


def threshold_name(threshold: float) -> str:
    """-1 / inf -> "inf", 1.0 -> "1", 0.5 -> "0.5" (the suffix of the ``val/ap_*`` metrics)."""
    return "inf" if threshold == -1 or np.isposinf(threshold) else f"{threshold:g}"


def build_set_prediction_model(model_cfg: dict[str, Any], image_size: int) -> nn.Module:
    """Slot Attention (``model.kind: slot_attention``) or Slot MLP (``slot_mlp``) property-prediction model."""
    kind = model_cfg.get("kind", "slot_attention")
    common = dict(
        resolution=(image_size, image_size),
        num_slots=model_cfg["num_slots"],
        slot_dim=model_cfg["slot_dim"],
        encoder_channels=model_cfg["encoder_channels"],
        encoder_strides=model_cfg["encoder_strides"],
        head_hidden=model_cfg["head_hidden"],
    )
    if kind == "slot_attention":
        return SetPredictionModel(
            iters=model_cfg["iters"],
            mlp_hidden=model_cfg["mlp_hidden"],
            position_embedding=model_cfg["position_embedding"],
            layer_norm_eps=model_cfg["layer_norm_eps"],
            slot_attention=dict(model_cfg["slot_attention"]),
            **common,
        )
    if kind == "slot_mlp":
        sm = model_cfg.get("slot_mlp") or {}
        return SetPredictionSlotMLP(grid=sm.get("grid", 8), hidden=sm.get("hidden", 512), **common)
    raise ConfigError(f"model.kind must be 'slot_attention' or 'slot_mlp', got {kind!r}")


def attention_masks(out: SetPredictionOutput, grid: tuple[int, int]) -> torch.Tensor:
    """Attention of the last iteration as masks [B, K, h, w] (a model with Slot Attention)."""
    a = out.attn[:, -1]  # [B, K, N]
    return a.reshape(a.shape[0], a.shape[1], *grid)  # [B, K, h, w]


def attention_ari(
    model: nn.Module, out: SetPredictionOutput, mask: torch.Tensor, undefined: str = "nan"
) -> torch.Tensor | None:
    """FG-ARI [B] of the last iteration's attention masks vs instance labels [B, S, S] downsampled (nearest);
    NaN where undefined (``undefined="nan"``, DeepMind's semantics) or 1.0 (``"one"``); None for a model
    without attention (the Slot MLP baseline)."""
    if slot_attention_of(model) is None:
        return None
    from slotlab.data.set_prediction_data import resize_masks

    grid = model.encoder.feature_resolution
    a = attention_masks(out, grid)
    if grid[0] != grid[1]:
        raise ValueError(f"attention ARI needs a square grid, got {grid}")
    true = resize_masks(mask, grid[0]).long()  # [B, h, w]
    return fg_ari(true.to(a.device), a.float(), undefined=undefined)


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    data: dict[str, torch.Tensor],
    batch_size: int = 256,
    num_slots: int | None = None,
    iters: int | None = None,
    channels_last: bool = False,
    seed: int = EVAL_SEED,
    ari_undefined: str = "nan",
) -> dict[str, Any]:
    """AP table (fractions, keys "inf", "1", ...) and attention-mask FG-ARI of ``model`` on held-out tensors
    ``data`` (image uint8 [n, 3, S, S], target [n, M, 19], optional mask uint8 [n, S, S]). The ARI mean skips
    images where it is undefined (NaN, ``ari_undefined="nan"``) and counts them in ``attn_ari_undefined``."""
    model.eval()
    device = next(model.parameters()).device
    preds, aris = [], []
    n = len(data["image"])
    if n == 0:
        raise ValueError("no evaluation images (check num_images / exact_objects)")
    index = data.get("index", torch.arange(n))
    for start in range(0, n, batch_size):
        image = image_to_model(data["image"][start : start + batch_size].to(device), channels_last)
        noise = eval_noise(model, index[start : start + batch_size], num_slots, seed)
        out = model(image, num_slots=num_slots, iters=iters, noise=None if noise is None else noise.to(device))
        where = f"held-out images {start}..{start + len(image) - 1}"
        require_finite_output(out.pred, "predictions", where, EVAL_ADVICE)  # NonFiniteOutputError, never an AP
        preds.append(out.pred.float().cpu())
        if "mask" in data:
            ari = attention_ari(model, out, data["mask"][start : start + batch_size], ari_undefined)
            if ari is not None:
                aris.append(ari.cpu())
    pred = torch.cat(preds)  # [n, K, 19]
    table = average_precision_table(pred, data["target"].float(), PAPER_THRESHOLDS)
    result: dict[str, Any] = {
        "ap": {threshold_name(th): float(v) for th, v in table.items()},
        "num_images": n,
        "num_slots": int(pred.shape[1]),
        "iters": iters,
    }
    for name, v in result["ap"].items():
        result[f"ap_{name}"] = v
    if aris:
        summary = nan_summary(torch.cat(aris), prefix="attn_ari")
        summary.pop("num_images")
        result.update(summary)
    return result


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
    lines.append(f"({result.get('num_images', '?')} images, K={result.get('num_slots', '?')})")
    return "\n".join(lines)


class SetPrediction(Task):
    name = "set_prediction"
    defaults = SET_PREDICTION
    monitor = "val/ap_inf"
    best_name = "best-step{step:07d}-apinf{val/ap_inf:.4f}"
    score = ("AP_inf", "ap_inf")
    curves = (
        Curve("training loss (Hungarian Huber)", ("train/loss",), "loss", log_scale=True),
        Curve(
            "held-out AP per distance threshold",
            tuple(f"val/ap_{threshold_name(th)}" for th in PAPER_THRESHOLDS),
            "AP",
        ),
        Curve("held-out loss (Hungarian Huber)", ("val/loss",), "loss", log_scale=True),
        Curve("held-out attention-mask FG-ARI", ("val/attn_ari",), "FG-ARI"),
        Curve("images with undefined attention ARI (skipped)", ("val/attn_ari_undefined",), "images"),
        Curve("learning rate", ("train/lr", "lr-Adam"), "lr"),
    )
    figure_names = FIGURE_NAMES

    # ------------------------------------------------------------------ model and data
    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        size = int(cfg["data"]["image_size"])
        return size, size

    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        return build_set_prediction_model(cfg["model"], int(cfg["data"]["image_size"]))

    def datamodule(self, cfg: dict[str, Any]) -> L.LightningDataModule:
        from slotlab.data.set_prediction_data import SetPredictionData

        return SetPredictionData(cfg["data"])

    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        """image uint8 [n, 3, S, S], target float32 [n, M, 19], mask uint8 [n, S, S] (procedural only),
        num_objects int64 [n], from the validated shard cache (built first if needed)."""
        from slotlab.data.set_prediction_data import load_split

        return load_split(data_cfg, split, count, EVAL_KEYS)

    # ------------------------------------------------------------------ training
    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return model.loss(out, batch["target"])

    def validation_step(self, module: L.LightningModule, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        image = image_to_model(batch["image"], module.channels_last)
        noise = eval_noise(module.model, batch["index"], None, EVAL_SEED)
        out: SetPredictionOutput = module.model(image, noise=None if noise is None else noise.to(module.device))
        where = f"validation batch {batch_idx} at step {module.global_step}"
        require_finite_output(out.pred, "predictions", where, TRAIN_ADVICE)
        target = batch["target"].float()
        store = module.val_store
        store.setdefault("pred", []).append(out.pred.detach().float())
        store.setdefault("target", []).append(target)
        store.setdefault("loss", []).append(module.model.loss(out, target).detach().reshape(1))
        if "mask" in batch:
            ari = attention_ari(module.model, out, batch["mask"], module.config["eval"]["ari_undefined"])
            if ari is not None:
                store.setdefault("ari", []).append(ari)
        if batch_idx == 0:
            n = module.config["trainer"]["num_figure_images"]
            module.last_val_batch = {"image": image[:n].detach().cpu(), "attn": out.attn[:n].detach().cpu()}

    def validation_end(self, module: L.LightningModule) -> None:
        store = module.val_store
        pred = torch.cat(store["pred"])  # [n, K, 19]
        target = torch.cat(store["target"])  # [n, M, 19]
        if module.trainer.world_size > 1:  # AP is not a mean over images: rank over all processes' predictions
            pred = module.all_gather(pred).flatten(0, 1)
            target = module.all_gather(target).flatten(0, 1)
        table = average_precision_table(pred.cpu(), target.cpu(), PAPER_THRESHOLDS)
        for th, ap in table.items():
            module.log(f"val/ap_{threshold_name(th)}", float(ap), prog_bar=th in (-1.0, 1.0))
        module.log("val/loss", torch.cat(store["loss"]).mean(), sync_dist=True)
        if store.get("ari"):
            scores = torch.cat(store["ari"]).float()
            defined = ~scores.isnan()
            # Mean over the images where the ARI is defined (NaN images skipped, counted in val/attn_ari_undefined).
            total = torch.stack([scores.nan_to_num().sum(), defined.sum().float(), (~defined).sum().float()])
            if module.trainer.world_size > 1:
                total = module.all_gather(total).sum(dim=0)
            module.log("val/attn_ari", total[0] / total[1].clamp(min=1), prog_bar=True)
            module.log("val/attn_ari_undefined", total[2])

    def validation_figures(
        self, model: nn.Module, batch: dict[str, torch.Tensor], about: str
    ) -> dict[str, LabelledGrid]:
        """``attention``: the attention masks per iteration of the first 2 images (Figure 6); none for the Slot MLP
        baseline (no attention maps)."""
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

    # ------------------------------------------------------------------ evaluation
    def eval_data(
        self, cfg: dict[str, Any], data_cfg: dict[str, Any], split: str, count: int, setting: EvalSetting
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The held-out images of ``setting``: a CLEVR6 model tested with more slots than CLEVR6 has objects is
        tested on CLEVR10 scenes; ``setting.objects`` keeps the images with exactly that many objects."""
        from slotlab.data.set_prediction_data import TARGET_ROWS

        d = dict(data_cfg)
        if setting.num_slots is not None and setting.num_slots > TARGET_ROWS[d["variant"]]:
            d["variant"] = "clevr10"
        data = self.heldout(d, split, count)
        if setting.objects is not None:
            keep = data["num_objects"] == setting.objects
            data = {k: v[keep] for k, v in data.items()}
        return data, {"variant": d["variant"], "source": d["source"]}

    def evaluate(
        self,
        model: nn.Module,
        data: dict[str, torch.Tensor],
        cfg: dict[str, Any],
        setting: EvalSetting = DEFAULT_SETTING,
        options: EvalOptions = DEFAULT_OPTIONS,
    ) -> dict[str, Any]:
        result = evaluate_model(
            model,
            data,
            int(options.batch_size or cfg["data"]["eval_batch_size"]),
            setting.num_slots,
            setting.iters,
            channels_last=options.channels_last,
            seed=options.seed,
            ari_undefined=options.ari_undefined or cfg["eval"]["ari_undefined"],
        )
        mlp = cfg["model"]["kind"] == "slot_mlp"
        result.update(
            model_kind=cfg["model"]["kind"],
            exact_objects=setting.objects,
            iters=setting.iters if setting.iters is not None or mlp else cfg["model"]["iters"],
        )
        return result

    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        ks, ts, objs = num_slots or [None], iters or [None], objects or [None]
        grid = [EvalSetting(k, t, n) for k in ks for t in ts for n in objs]
        k_names = [k or cfg["model"]["num_slots"] for k in ks]
        t_names = [None] if cfg["model"]["kind"] == "slot_mlp" else [t or cfg["model"]["iters"] for t in ts]
        return grid, k_names, t_names

    def format_eval(self, result: dict[str, Any], setting: EvalSetting, split: str, cfg: dict[str, Any]) -> str:
        head = (
            f"K={setting.num_slots or result['num_slots']} T={result.get('iters') or '-'} "
            f"objects={setting.objects or 'all'} split={split}"
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

    def format_result(self, result: dict[str, Any], cfg: dict[str, Any]) -> str:
        return format_ap_table(result)

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"variant": cfg["data"]["variant"], "source": cfg["data"]["source"]}

    # ------------------------------------------------------------------ figures
    @torch.no_grad()
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
        """Paper Figure 6: per held-out image and iteration, the attention mask of every slot over the image."""
        if slot_attention_of(model) is None:
            raise ValueError("a Slot MLP model has no attention maps to draw")
        image = image_to_model(data["image"], channels_last=False)  # [B, 3, S, S]
        noise = eval_noise(model, torch.arange(len(image)), num_slots, EVAL_SEED if seed is None else seed)
        out = model(image, num_slots=num_slots, iters=iters, noise=noise)
        _, t, k, _ = out.attn.shape
        title = "Figure 6: attention masks per iteration" + "".join(f" · {p}" for p in (about, f"K={k}, T={t}") if p)
        s = figure6_scale(model.resolution) if scale is None else int(scale)
        return {FIGURE_NAMES[0]: figure6_grid(image, out.attn, model.encoder.feature_resolution, s, title)}


def figure6_scale(resolution: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that the images of Figure 6 are drawn at least ~``target`` pixels tall (2 at least)."""
    return max(2, -(-target // max(1, min(resolution))))
