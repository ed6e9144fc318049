"""Task 'object_discovery': the unsupervised Slot Attention autoencoder (paper Sections 2.2 and 4.1; Figure 3;
Table 1), and its Slot MLP baseline (:mod:`.model`). MSE reconstruction loss; held-out FG-ARI (DeepMind's
semantics), MSE and the layout ARI of failed-seed detection at every validation, on the image datasets of
:mod:`slotlab.data` (Tetrominoes, Multi-dSprites, CLEVR). Its text and pictures (Figure 3, the FG-ARI sweep and
curves) are :mod:`.presenter`'s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from slotlab.checks import EVAL_ADVICE, TRAIN_ADVICE, require_finite_output
from slotlab.data.clevr_folder import is_clevr_folder
from slotlab.data.registry import get_dataset
from slotlab.errors import ConfigError, UsageError
from slotlab.metrics.ari import fg_ari, layout_ari, nan_summary
from slotlab.metrics.attention_masks import attention_masks
from slotlab.noise import index_noise
from slotlab.tasks.base import (
    DEFAULT_OPTIONS,
    DEFAULT_SETTING,
    EVAL_SEED,
    EvalFlags,
    EvalOptions,
    EvalSetting,
    OfficialModel,
    Task,
    ValidationBatch,
    ValidationContext,
    image_to_model,
    run_model,
    slot_attention_of,
    slot_shape,
)
from slotlab.tasks.common import eval_iters
from slotlab.tasks.object_discovery.centres import Preparation, evaluate_centres, load_clevr_centres
from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel, ObjectDiscoverySlotMLP
from slotlab.tasks.object_discovery.presenter import ObjectDiscoveryPresenter
from slotlab.tasks.object_discovery.schema import SCHEMA

if TYPE_CHECKING:
    import lightning as L


def build_model(model_cfg: dict[str, Any], image_size: tuple[int, int]) -> nn.Module:
    """The object-discovery model a config's ``model`` section describes (``kind``: slot_attention | slot_mlp);
    the constructor's arguments are the section's keys that the schema passes to that kind."""
    models = {"slot_attention": ObjectDiscoveryModel, "slot_mlp": ObjectDiscoverySlotMLP}
    if model_cfg["kind"] not in models:
        raise ValueError(f"model.kind must be slot_attention or slot_mlp, got {model_cfg['kind']!r}")
    return models[model_cfg["kind"]](resolution=image_size, **SCHEMA.model_kwargs(model_cfg))


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
    attention: list[torch.Tensor] | None = None,
) -> np.ndarray:
    """FG-ARI per image of ``model`` on uint8 images [N, 3, H, W] and int masks [N, H, W] (NaN where undefined,
    with ``undefined="nan"``, DeepMind's semantics), from the decoder's alpha masks (the paper's Table 1).
    ``attention``: a list that receives, per batch, the FG-ARI of the same forward pass's attention masks
    (:func:`attention_masks`; Slot Attention models only)."""
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
        true = masks[start : start + batch_size].long()
        scores.append(fg_ari(true, out.masks, undefined))
        if attention is not None:
            maps = attention_masks(out.attn, model.encoder.feature_resolution, tuple(image.shape[-2:]))
            attention.append(fg_ari(true, maps, undefined))
    return torch.cat(scores).cpu().numpy()


def summarize(scores: np.ndarray) -> dict[str, float]:
    """Mean / std / median over the images where FG-ARI is defined, and the count of undefined (skipped) ones."""
    s = nan_summary(scores, prefix="fg_ari")
    ok = scores[~np.isnan(scores)]
    s["frac_above_0.9"] = float(np.mean(ok > 0.9)) if len(ok) else math.nan
    return s


def _official_head(decoder_layers: int = 6) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """The decoder of the reference code's SlotAttentionAutoEncoder (position embedding, transposed convs)."""
    head = [
        ("decoder_pos/dense/kernel", ("decoder.pos.dense.weight",), "dense"),
        ("decoder_pos/dense/bias", ("decoder.pos.dense.bias",), "same"),
    ]
    for i in range(decoder_layers):
        head += [
            (f"decoder_cnn/layer_with_weights-{i}/kernel", (f"decoder.layers.{i}.weight",), "conv_transpose"),
            (f"decoder_cnn/layer_with_weights-{i}/bias", (f"decoder.layers.{i}.bias",), "same"),
        ]
    return tuple(head)


class ObjectDiscovery(Task):
    name = SCHEMA.name
    schema = SCHEMA
    title = "object discovery"
    defaults = SCHEMA.defaults()
    monitor = "val/fg_ari"
    metrics = ("val/fg_ari", "val/fg_ari_std", "val/mse", "val/layout_ari", "val/fg_ari_undefined")
    progress_metrics = ("val/fg_ari",)
    score = ("FG-ARI", "fg_ari_mean")
    failed_seed_metric = "val/layout_ari"
    presenter_class = ObjectDiscoveryPresenter
    official = OfficialModel(
        keras_class="SlotAttentionAutoEncoder",
        config="clevr6",
        head=_official_head(),
        head_prefix="decoder_cnn/",
        resolution_factor=16,  # the "clevr" decoder upsamples 16x
    )
    # The paper's numbers per dataset (mean +- std over seeds, %), for zoo cards.
    paper_scores = {
        "tetrominoes": {"metric": "FG-ARI", "value": "99.5 +- 0.2 %", "where": "Table 1"},
        "multi_dsprites": {"metric": "FG-ARI", "value": "91.3 +- 0.3 %", "where": "Table 1"},
        "multi_dsprites_binarized": {"metric": "FG-ARI", "value": "69.4 +- 0.9 % (K=4)", "where": "Section 4.1"},
        "clevr6": {"metric": "FG-ARI", "value": "98.8 +- 0.3 %", "where": "Table 1"},
        "clevr6_greyscale": {"metric": "FG-ARI", "value": "98.5 +- 0.3 %", "where": "Section 4.1, Figure 4"},
    }

    # ------------------------------------------------------------------ config
    def check_config(self, cfg: dict[str, Any]) -> None:
        """The "clevr" decoder upsamples 16x: the dataset's image size must be divisible by 16; the encoder's Fourier
        position features extend the position embedding, which must then be on."""
        d, m = cfg["data"], cfg["model"]
        if m.get("encoder_fourier_bands") and not m.get("position_embedding", True):
            raise ConfigError(
                "model.encoder_fourier_bands extends the encoder's position embedding: it needs "
                "model.position_embedding=true (or model.encoder_fourier_bands=0)"
            )
        h, w = get_dataset(d["name"]).image_size
        if m["decoder"] == "clevr" and (h % 16 or w % 16):
            raise ConfigError(
                f"model.decoder 'clevr' upsamples 16x and needs an image size divisible by 16; {d['name']} images "
                f"are {h}x{w}: use model.decoder=full_resolution"
            )

    def check_data_source(self, cfg: dict[str, Any]) -> None:
        """A DeepMind TFRecord file at ``data.path``; else a writable cache for the expensive generators."""
        from slotlab.data.cache import check_cache_writable

        d = cfg["data"]
        path = d.get("path")
        if path:
            if not Path(path).is_file():
                what = "is a folder" if Path(path).is_dir() else "not found"
                raise ConfigError(
                    f"data.path {path}: {what}. Give the {d['name']} TFRecord file of DeepMind's multi-object-datasets"
                )
            return
        if get_dataset(d["name"]).expensive:
            check_cache_writable(d.get("cache_dir"))

    def check_eval_flags(self, cfg: dict[str, Any], flags: EvalFlags) -> None:
        if flags.objects:
            raise UsageError(
                "--objects applies to set prediction only (images with exactly N objects); this checkpoint is an "
                "object-discovery model"
            )
        path = flags.data_path
        if path is None or Path(path).is_file():
            return
        if is_clevr_folder(path):  # scene JSON, no masks: the object-centre separation instead of FG-ARI
            if flags.split == "test":
                raise UsageError("--split test: CLEVR v1.0's test split has no scene JSON; use --split eval (CLEVR's "
                                 "val)")  # fmt: skip
            return
        what = "a folder without CLEVR v1.0 scenes" if Path(path).is_dir() else "not found"
        raise UsageError(f"--data-path {path}: {what}; give the DeepMind .tfrecords file of the model's dataset, or a "
                         "CLEVR v1.0 folder (images/ and scenes/) for the object-centre separation")  # fmt: skip

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

    def validation_step(
        self, model: nn.Module, batch: dict[str, torch.Tensor], batch_idx: int, ctx: ValidationContext
    ) -> ValidationBatch:
        image = image_to_model(batch["image"], ctx.channels_last)
        noise = index_noise(EVAL_SEED, batch["index"], *slot_shape(model)).to(ctx.device)
        out = run_model(model, image, noise)
        undefined = ctx.config["eval"]["ari_undefined"]
        where = f"validation batch {batch_idx} at step {ctx.step}"
        require_finite_output(out.masks, "masks", where, TRAIN_ADVICE)
        values = {
            "scores": fg_ari(batch["mask"].long(), out.masks, undefined),
            "mse": ((out.recon - image) ** 2).mean(dim=(1, 2, 3)),
            "index": batch["index"],
        }
        if getattr(out, "keep", None) is not None:  # model.slot_keep: the slots each image keeps
            values["kept"] = out.keep.sum(1)
        trained_t = ctx.config["model"]["iters"]
        if getattr(model, "eval_iters", None) not in (None, trained_t):
            # model.eval_iters: FG-ARI at the trained T too (a curve comparable with runs without the key), and
            # failed-seed detection at the trained T: early in training more iterations than trained with can
            # collapse every image into one slot, which reads as a content-free (stuck) segmentation.
            trained = run_model(model, image, noise, iters=trained_t)
            values["scores_trained_t"] = fg_ari(batch["mask"].long(), trained.masks, undefined)
            values["layout"] = layout_ari(trained.masks).reshape(1)
        else:
            values["layout"] = layout_ari(out.masks).reshape(1)
        figures = None
        if ctx.want_figures:
            figures = {"image": image, "recon": out.recon, "masks": out.masks, "recons": out.recons, "attn": out.attn}
        return ValidationBatch(values, figures)

    def validation_metrics(self, values: dict[str, torch.Tensor], ctx: ValidationContext) -> dict[str, Any]:
        names = ["scores", "mse", *(n for n in ("scores_trained_t", "kept") if n in values)]
        per_image = {n: values[n].float() for n in names}
        index = values["index"].long()
        layout = values["layout"].nanmean()
        if ctx.world_size > 1:
            # Gather every process's per-image scores; the distributed sampler pads shards by repeating
            # images, so keep each image once. Every process then logs the same full-set numbers.
            index = ctx.gather(index).flatten()
            per_image = {n: ctx.gather(t).flatten() for n, t in per_image.items()}
            order = torch.argsort(index, stable=True)
            index = index[order]
            first = torch.ones_like(index, dtype=torch.bool)
            first[1:] = index[1:] != index[:-1]
            per_image = {n: t[order][first] for n, t in per_image.items()}
        scores, mse = per_image["scores"], per_image["mse"]
        # Means over the images where FG-ARI is defined; the undefined (NaN) ones are counted.
        defined = scores[~scores.isnan()]
        nan = scores.new_tensor(float("nan"))
        out = {
            "val/fg_ari": defined.mean() if len(defined) else nan,
            "val/fg_ari_std": defined.std(unbiased=False) if len(defined) else nan,
            "val/fg_ari_undefined": float(len(scores) - len(defined)),
            "val/mse": mse.mean(),
            "val/layout_ari": ctx.mean_over_processes(layout),
        }
        if "scores_trained_t" in per_image:  # model.eval_iters set: FG-ARI at the trained T beside it
            t = per_image["scores_trained_t"]
            out["val/fg_ari_trained_t"] = t.nanmean() if (~t.isnan()).any() else nan
        if "kept" in per_image:  # model.slot_keep: slots kept per image, the mean
            out["val/kept_slots"] = per_image["kept"].mean()
        return out

    # ------------------------------------------------------------------ evaluation
    def eval_data(
        self, cfg: dict[str, Any], data_cfg: dict[str, Any], split: str, count: int, setting: EvalSetting
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """A CLEVR v1.0 folder at ``data.path`` (``slotlab eval --data-path``): its images prepared as the model's
        and their objects' centres (:mod:`.centres`); else the held-out images and masks."""
        path = data_cfg.get("path")
        if not path or not is_clevr_folder(path):
            return self.heldout(data_cfg, split, count), {}
        from slotlab.data.files import TFRECORD_NAMES

        prep = self._preparation(cfg)
        max_objects = TFRECORD_NAMES.get(cfg["data"]["name"], (None, None, False))[1]
        return load_clevr_centres(path, split, count, Preparation(self.image_size(cfg), prep["clevr_crop"],
                                                                  prep["greyscale"]), max_objects)  # fmt: skip

    def evaluate(
        self,
        model: nn.Module,
        data: dict[str, torch.Tensor],
        cfg: dict[str, Any],
        setting: EvalSetting = DEFAULT_SETTING,
        options: EvalOptions = DEFAULT_OPTIONS,
    ) -> dict[str, Any]:
        """FG-ARI of the images' masks (the decoder's, the paper's protocol; Slot Attention models also get
        ``attn_fg_ari_*``, the same of their attention masks, a diagnostic); on a CLEVR folder (no masks, object
        centres): the object-centre separation (:mod:`.centres`)."""
        device = next(model.parameters()).device
        if "centre" in data:
            return evaluate_centres(model, data, options.batch_size or cfg["data"]["eval_batch_size"],
                                    setting.num_slots, setting.iters, options.channels_last, options.seed)  # fmt: skip
        attention: list[torch.Tensor] | None = [] if slot_attention_of(model) is not None else None
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
            attention=attention,
        )
        result = summarize(scores)
        if attention:  # a diagnostic beside the paper's score: the attention masks of the same forward passes
            attn = nan_summary(torch.cat(attention).cpu().numpy(), prefix="attn_fg_ari")
            result.update({k: v for k, v in attn.items() if k != "num_images"})
        return result

    def eval_grid(
        self, cfg: dict[str, Any], num_slots: list[int] | None, iters: list[int] | None, objects: list[int] | None
    ) -> tuple[list[EvalSetting], list[Any], list[Any]]:
        mlp = cfg["model"]["kind"] == "slot_mlp"
        ks = num_slots or [cfg["model"]["num_slots"]]
        ts: list[int | None] = [None] if mlp else (iters or [eval_iters(cfg)])
        grid = [EvalSetting(None if mlp else k, t) for k in ks for t in ts]
        return grid, ks, ts

    def result_facts(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": cfg["data"]["name"]}

    # ------------------------------------------------------------------ zoo, one's own images
    def domain_images(self, cfg: dict[str, Any], count: int, split: str) -> torch.Tensor | None:
        """The first ``count`` images of the built-in dataset's ``split`` (none for a model trained on a file)."""
        if cfg["data"].get("path"):
            return None
        from slotlab.data.samples import load_images

        images, _ = load_images(cfg["data"]["name"], num=count, split=split, seed=cfg["data"]["seed"])
        return images

    def image_preparation(self, model: nn.Module, cfg: dict[str, Any]) -> dict[str, Any]:
        """CLEVR models: the reference crop; greyscale models: the luminance (as the training images)."""
        notes = [] if slot_attention_of(model) is not None else ["Slot MLP baseline: no attention maps to draw"]
        return {**self._preparation(cfg), "notes": notes}

    def _preparation(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """``image_preparation`` without the model's notes (what the config alone says)."""
        from slotlab.data.files import TFRECORD_NAMES

        name = cfg["data"]["name"]
        tf_name, _, grey = TFRECORD_NAMES.get(name, (name, None, False))
        return {"dataset": name, "clevr_crop": tf_name == "clevr_with_masks", "greyscale": bool(grey),
                "squash_aspect": None}  # fmt: skip
