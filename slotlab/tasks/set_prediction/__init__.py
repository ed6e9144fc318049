"""Task 'set_prediction': supervised object property prediction (paper Sections 2.3 and 4.2; Figures 5 and 6).

The model (Slot Attention or the Slot MLP baseline, :mod:`.model`) is trained with the Hungarian-matched Huber
loss, Adam and the reference schedule (CLEVR10: batch 512, lr 4e-4, 150k steps, warmup 1k, decay 0.5 per 50k
steps) on CLEVR-like renders or CLEVR v1.0 (:mod:`.data`). Every validation logs the object-level AP at the
paper's distance thresholds (``val/ap_inf``, ``val/ap_1``, ``val/ap_0.5``, ``val/ap_0.25``, ``val/ap_0.125``) and,
where ground-truth instance masks exist (procedural data), the FG-ARI of the last iteration's attention masks on
the encoder grid (32x32 in the paper; masks downsampled with nearest) as ``val/attn_ari``. Its text and pictures
(the AP table, Figure 6, AP per threshold over steps) are :mod:`.presenter`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from slotlab.checks import EVAL_ADVICE, TRAIN_ADVICE, require_finite_output
from slotlab.data.errors import DatasetFileError
from slotlab.errors import ConfigError, UsageError
from slotlab.metrics.ari import fg_ari, nan_summary
from slotlab.metrics.attention_masks import attention_masks
from slotlab.metrics.average_precision import PAPER_THRESHOLDS, average_precision_table
from slotlab.tasks.base import (
    DEFAULT_OPTIONS,
    DEFAULT_SETTING,
    EVAL_SEED,
    EvalFlags,
    EvalOptions,
    EvalSetting,
    OfficialModel,
    Task,
    TransferCheck,
    ValidationBatch,
    ValidationContext,
    eval_noise,
    image_to_model,
    slot_attention_of,
)
from slotlab.tasks.common import eval_iters
from slotlab.tasks.set_prediction.model import SetPredictionModel, SetPredictionOutput, SetPredictionSlotMLP
from slotlab.tasks.set_prediction.presenter import SetPredictionPresenter, threshold_name
from slotlab.tasks.set_prediction.schema import SCHEMA

if TYPE_CHECKING:
    import lightning as L

# .data defines the task's Lightning DataModule: it is imported where data are needed, so that importing the task
# (to build or load a model) does not load Lightning.

EVAL_KEYS = ("image", "target", "mask", "num_objects")
TARGET_BYTES = 10 * 19 * 4  # the targets of one image in memory (at most 10 rows of 19 float32)


def build_set_prediction_model(model_cfg: dict[str, Any], image_size: int) -> nn.Module:
    """Slot Attention (``model.kind: slot_attention``) or Slot MLP (``slot_mlp``) property-prediction model; the
    constructor's arguments are the ``model`` keys that the schema passes to that kind."""
    kind = model_cfg.get("kind", "slot_attention")
    models = {"slot_attention": SetPredictionModel, "slot_mlp": SetPredictionSlotMLP}
    if kind not in models:
        raise ConfigError(f"model.kind must be 'slot_attention' or 'slot_mlp', got {kind!r}")
    return models[kind](resolution=(image_size, image_size), **SCHEMA.model_kwargs(model_cfg))


def attention_ari(
    model: nn.Module, out: SetPredictionOutput, mask: torch.Tensor, undefined: str = "nan"
) -> torch.Tensor | None:
    """FG-ARI [B] of the last iteration's attention masks vs instance labels [B, S, S] downsampled (nearest);
    NaN where undefined (``undefined="nan"``, DeepMind's semantics) or 1.0 (``"one"``); None for a model
    without attention (the Slot MLP baseline)."""
    if slot_attention_of(model) is None:
        return None
    from slotlab.tasks.set_prediction.data import resize_masks

    grid = model.encoder.feature_resolution
    a = attention_masks(out.attn, grid)  # [B, K, h, w]
    if grid[0] != grid[1]:
        raise ValueError(f"attention ARI needs a square grid, got {grid}")
    true = resize_masks(mask, grid[0]).long()  # [B, h, w]
    return fg_ari(true.to(a.device), a, undefined=undefined)


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


def _dense(tf_name: str, torch_name: str) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    return (
        (f"{tf_name}/kernel", (f"{torch_name}.weight",), "dense"),
        (f"{tf_name}/bias", (f"{torch_name}.bias",), "same"),
    )


class SetPrediction(Task):
    name = SCHEMA.name
    schema = SCHEMA
    title = "set prediction"
    defaults = SCHEMA.defaults()
    monitor = "val/ap_inf"
    metrics = (
        *(f"val/ap_{threshold_name(th)}" for th in PAPER_THRESHOLDS),
        "val/loss",
        "val/attn_ari",
        "val/attn_ari_undefined",
    )
    progress_metrics = ("val/ap_inf", "val/ap_1", "val/attn_ari")
    score = ("AP_inf", "ap_inf")
    presenter_class = SetPredictionPresenter
    # The reference code's SlotAttentionClassifier: its per-slot MLP classifier is slotlab's PropertyHead.
    official = OfficialModel(
        keras_class="SlotAttentionClassifier",
        config="clevr10_set_prediction",
        head=_dense("mlp_classifier/layer_with_weights-0", "head.net.0")
        + _dense("mlp_classifier/layer_with_weights-1", "head.net.2"),
        head_prefix="mlp_classifier/",
        resolution_factor=4,  # the encoder downsamples 4x
    )
    paper_scores = {
        "clevr10": {"metric": "AP_inf", "value": "94.3 %", "where": "Figure 5 (left), CLEVR10"},
        "clevr6": {
            "metric": "AP_inf",
            "value": "no table value (trained on CLEVR10: 94.3 %)",
            "where": "Figure 5 (right) plots the CLEVR6-trained model's AP per number of objects",
        },
    }

    # ------------------------------------------------------------------ config
    def check_config(self, cfg: dict[str, Any]) -> None:
        """K = the variant's number of target rows, one stride per encoder layer, a folder to read."""
        from slotlab.tasks.set_prediction.data import TARGET_ROWS

        d, m = cfg["data"], cfg["model"]
        if len(m["encoder_strides"]) != len(m["encoder_channels"]):
            raise ConfigError(
                f"model.encoder_strides ({m['encoder_strides']}) and model.encoder_channels "
                f"({m['encoder_channels']}) must have the same length (one stride per encoder layer)"
            )
        if d["variant"] not in TARGET_ROWS:
            raise ConfigError(f"data.variant must be one of {sorted(TARGET_ROWS)}, got {d['variant']!r}")
        if m["num_slots"] != TARGET_ROWS[d["variant"]]:
            raise ConfigError(
                f"model.num_slots ({m['num_slots']}) must equal the number of target rows of data.variant "
                f"{d['variant']!r} ({TARGET_ROWS[d['variant']]}): the Hungarian loss matches K slots to K targets"
            )
        if d["source"] == "clevr_folder" and not d["path"]:
            raise ConfigError("data.source is 'clevr_folder': set data.path to the CLEVR v1.0 folder")

    def check_data_source(self, cfg: dict[str, Any]) -> None:
        from slotlab.data.cache import check_cache_writable

        d = cfg["data"]
        if d["source"] == "clevr_folder" and not Path(d["path"]).is_dir():
            raise ConfigError(
                f"data.path {d['path']}: no such folder (the CLEVR v1.0 folder, with images/ and scenes/)"
            )
        check_cache_writable(d.get("cache_dir"))

    def example_bytes(self, cfg: dict[str, Any]) -> int:
        h, w = self.image_size(cfg)
        return 4 * h * w + TARGET_BYTES

    def check_eval_flags(self, cfg: dict[str, Any], flags: EvalFlags) -> None:
        if cfg["model"]["kind"] == "slot_mlp" and flags.ari_undefined:
            raise UsageError("--ari-undefined does not apply: the Slot MLP baseline has no attention masks to score")
        path = flags.data_path
        source = "clevr_folder" if path is not None else cfg["data"]["source"]
        if path is not None and not Path(path).is_dir():
            raise UsageError(f"--data-path {path}: no such folder (a CLEVR v1.0 folder with images/ and scenes/)")
        if flags.split == "test" and source == "clevr_folder":
            raise UsageError(
                "--split test: CLEVR v1.0's test split has no scene annotations, so it cannot be scored; use --split "
                "eval (CLEVR's val)"
            )
        if flags.objects:
            from slotlab.data.clevr_render import VARIANTS

            variant = cfg["data"]["variant"]
            if flags.num_slots and max(flags.num_slots) > VARIANTS[variant]["max_objects"]:
                variant = "clevr10"  # eval_data's rule: more slots than objects -> CLEVR10 scenes
            lo, hi = VARIANTS[variant]["min_objects"], VARIANTS[variant]["max_objects"]
            bad = [o for o in flags.objects if not lo <= o <= hi]
            if bad:
                raise UsageError(
                    f"--objects {bad}: {variant} scenes have {lo} to {hi} objects, so no image has {bad[0]}"
                )

    # ------------------------------------------------------------------ model and data
    def image_size(self, cfg: dict[str, Any]) -> tuple[int, int]:
        size = int(cfg["data"]["image_size"])
        return size, size

    def build_model(self, cfg: dict[str, Any], image_size: tuple[int, int] | None = None) -> nn.Module:
        return build_set_prediction_model(cfg["model"], int(cfg["data"]["image_size"]))

    def datamodule(self, cfg: dict[str, Any]) -> L.LightningDataModule:
        from slotlab.tasks.set_prediction.data import SetPredictionData

        return SetPredictionData(cfg["data"])

    def heldout(self, data_cfg: dict[str, Any], split: str, count: int) -> dict[str, torch.Tensor]:
        """image uint8 [n, 3, S, S], target float32 [n, M, 19], mask uint8 [n, S, S] (procedural only),
        num_objects int64 [n], from the validated shard cache (built first if needed)."""
        from slotlab.tasks.set_prediction.data import load_split

        return load_split(data_cfg, split, count, EVAL_KEYS)

    def data_with_path(self, data_cfg: dict[str, Any], data_path: str) -> dict[str, Any]:
        """A CLEVR v1.0 folder instead of the config's data."""
        return {**data_cfg, "source": "clevr_folder", "path": str(data_path)}

    # ------------------------------------------------------------------ training
    def loss(self, model: nn.Module, out: Any, batch: dict[str, torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        return model.loss(out, batch["target"])

    def validation_step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], batch_idx: int, ctx: ValidationContext
    ) -> ValidationBatch:
        image = image_to_model(batch["image"], ctx.channels_last)
        noise = eval_noise(model, batch["index"], None, EVAL_SEED)
        out: SetPredictionOutput = model(image, noise=None if noise is None else noise.to(ctx.device))
        where = f"validation batch {batch_idx} at step {ctx.step}"
        require_finite_output(out.pred, "predictions", where, TRAIN_ADVICE)
        target = batch["target"].float()
        values = {
            "pred": out.pred.detach().float(),
            "target": target,
            "loss": model.loss(out, target).detach().reshape(1),
        }
        if "mask" in batch:
            ari = attention_ari(model, out, batch["mask"], ctx.config["eval"]["ari_undefined"])
            if ari is not None:
                values["ari"] = ari
        figures = {"image": image, "attn": out.attn} if ctx.want_figures else None
        return ValidationBatch(values, figures)

    def validation_metrics(self, values: dict[str, torch.Tensor], ctx: ValidationContext) -> dict[str, Any]:
        pred, target = values["pred"], values["target"]  # [n, K, 19], [n, M, 19]
        if ctx.world_size > 1:  # AP is not a mean over images: rank over all processes' predictions
            pred, target = ctx.gather(pred).flatten(0, 1), ctx.gather(target).flatten(0, 1)
        table = average_precision_table(pred.cpu(), target.cpu(), PAPER_THRESHOLDS)
        out: dict[str, Any] = {f"val/ap_{threshold_name(th)}": float(ap) for th, ap in table.items()}
        out["val/loss"] = ctx.mean_over_processes(values["loss"].mean())
        if "ari" in values:
            scores = values["ari"].float()
            defined = ~scores.isnan()
            # Mean over the images where the ARI is defined (NaN images skipped, counted in val/attn_ari_undefined).
            total = torch.stack([scores.nan_to_num().sum(), defined.sum().float(), (~defined).sum().float()])
            if ctx.world_size > 1:
                total = ctx.gather(total).sum(dim=0)
            out["val/attn_ari"] = total[0] / total[1].clamp(min=1)
            out["val/attn_ari_undefined"] = total[2]
        return out

    # ------------------------------------------------------------------ evaluation
    def eval_data(
        self, cfg: dict[str, Any], data_cfg: dict[str, Any], split: str, count: int, setting: EvalSetting
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The held-out images of ``setting``: a CLEVR6 model tested with more slots than CLEVR6 has objects is
        tested on CLEVR10 scenes; ``setting.objects`` keeps the images with exactly that many objects. A CLEVR v1.0
        folder (``slotlab eval --data-path``) with fewer scenes than ``count`` is evaluated whole, as the other
        tasks' data files are."""
        from slotlab.tasks.set_prediction.data import FOLDER_SPLITS, TARGET_ROWS, folder_size

        d = dict(data_cfg)
        if setting.num_slots is not None and setting.num_slots > TARGET_ROWS[d["variant"]]:
            d["variant"] = "clevr10"
        if d["source"] == "clevr_folder":
            count = min(count, folder_size(d, split))
            if count == 0:
                raise DatasetFileError(
                    f"{d['path']}: no {FOLDER_SPLITS[split]} scene with at most {TARGET_ROWS[d['variant']]} "
                    f"objects, the most this {d['variant']} model predicts"
                )
        data = self.heldout(d, split, count)
        if setting.objects is not None:
            keep = data["num_objects"] == setting.objects
            data = {k: v[keep] for k, v in data.items()}
            if len(data["image"]) == 0:
                raise UsageError(
                    f"--objects {setting.objects}: none of the first {count} held-out images ({split} split) has "
                    f"exactly {setting.objects} objects; raise --num-images or choose another count"
                )
        return data, {"variant": d["variant"], "source": d["source"]}

    def eval_data_key(self, setting: EvalSetting) -> tuple:
        return setting.num_slots, setting.objects

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
            iters=setting.iters if setting.iters is not None or mlp else eval_iters(cfg),
        )
        return result

    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        ks, ts, objs = num_slots or [None], iters or [None], objects or [None]
        grid = [EvalSetting(k, t, n) for k in ks for t in ts for n in objs]
        k_names = [k or cfg["model"]["num_slots"] for k in ks]
        t_names = [None] if cfg["model"]["kind"] == "slot_mlp" else [t or eval_iters(cfg) for t in ts]
        return grid, k_names, t_names

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"variant": cfg["data"]["variant"], "source": cfg["data"]["source"]}

    # ------------------------------------------------------------------ zoo, one's own images, official code
    def zoo_dataset(self, cfg: dict[str, Any]) -> str:
        return str(cfg["data"].get("variant", "clevr10"))

    def image_preparation(self, model: nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
        """The whole 3:2 scene squashed to S x S (no crop); the masks are attention maps (no decoder)."""
        d = cfg["data"]
        if d.get("source") == "clevr_folder":
            aspect = 480 / 320
        else:
            rh, rw = d.get("render_size") or (160, 240)
            aspect = rw / rh
        notes = []
        if slot_attention_of(model) is not None:
            h, w = model.encoder.feature_resolution
            notes.append(
                "set-prediction model: no decoder, so no reconstructions; the masks are the last iteration's "
                f"attention maps on the {h}x{w} encoder grid, upsampled to the image"
            )
        return {"dataset": f"{d.get('variant', '?')} (set prediction)", "clevr_crop": False, "greyscale": False,
                "squash_aspect": aspect, "notes": notes}  # fmt: skip

    def transfer_check(self, model: nn.Module, cfg: dict[str, Any]) -> TransferCheck:
        """AP on a CLEVR v1.0 folder's real renders vs on built-in renders of the model's variant
        (:mod:`slotlab.inference.transfer`)."""
        from slotlab.tasks.set_prediction.data import TARGET_ROWS, renders_to_examples

        variant, size = cfg["data"]["variant"], int(cfg["data"]["image_size"])
        return TransferCheck(
            variant=variant,
            max_objects=TARGET_ROWS[variant],
            builtin_data=lambda renders: renders_to_examples(renders, variant, size),
        )

    def official_overrides(self, resolution: int, num_slots: int | None) -> list[str]:
        from slotlab.tasks.set_prediction.data import TARGET_ROWS

        overrides = [f"data.image_size={resolution}"]
        # The Hungarian loss matches K slots to K target rows: K = 6 is the CLEVR6 variant.
        variant = next((v for v, rows in TARGET_ROWS.items() if rows == num_slots), None)
        if variant is not None:
            overrides.append(f"data.variant={variant}")
        return overrides
