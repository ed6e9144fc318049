"""Training and evaluation of supervised set prediction (paper Sections 2.3, 4.2; Figures 5 and 6).

``SetPredictionTask`` trains the property-prediction model (Slot Attention or the Slot MLP baseline) with the
Hungarian-matched Huber loss, Adam and the reference schedule (CLEVR10: batch 512, lr 4e-4, 150k steps, warmup
1k, decay 0.5 per 50k steps). Every validation logs the object-level AP at the paper's distance thresholds
(``val/ap_inf``, ``val/ap_1``, ``val/ap_0.5``, ``val/ap_0.25``, ``val/ap_0.125``) and, where ground-truth
instance masks exist (procedural data), the FG-ARI of the last iteration's attention masks on the encoder grid
(32x32 in the paper; masks downsampled with nearest) as ``val/attn_ari``; and writes a Figure-6-style picture
(per slot and iteration, the attention mask over the image) to ``run_dir/figures/``.

Entry points (wired into the CLI): :func:`train_set_prediction`, :func:`evaluate_set_prediction`,
:func:`format_ap_table`, :func:`load_set_prediction` and the config schema :data:`SET_PREDICTION_DEFAULTS`.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from slotlab.config import DEFAULTS, ConfigError
from slotlab.data.set_prediction_data import TARGET_ROWS, SetPredictionData, load_split, resize_masks
from slotlab.metrics.ari import fg_ari, nan_summary, undefined_note
from slotlab.metrics.average_precision import PAPER_THRESHOLDS, average_precision_table
from slotlab.models.set_prediction import SetPredictionModel, SetPredictionOutput
from slotlab.models.slot_mlp import SetPredictionSlotMLP
from slotlab.train.callbacks import StepTimer
from slotlab.train.checkpoints import load_task_checkpoint
from slotlab.train.noise import index_noise, step_noise
from slotlab.train.object_discovery import EVAL_SEED, ObjectDiscoveryTask, check_and_log_loss, image_to_model
from slotlab.train.runtime import resolve_channels_last
from slotlab.train.state import add_state
from slotlab.viz import grid_image, save_png, slot_colors, to_unit

# Paper Figure 5 (left), Slot Attention on CLEVR10, AP in % (mean over seeds); attention-mask ARI: Section 4.2.
PAPER_AP_CLEVR10 = {"inf": 94.3, "1": 86.7, "0.5": 56.0, "0.25": 10.8, "0.125": 0.9}
PAPER_ATTN_ARI_CLEVR10 = 78.0

# Full config schema of task 'set_prediction' = paper / reference-code settings for CLEVR10 (Section 4.2).
SET_PREDICTION_DEFAULTS: dict[str, Any] = {
    "task": "set_prediction",
    "seed": 0,
    "data": {
        "source": "procedural",  # "procedural" (CLEVR-like renderer) or "clevr_folder" (CLEVR v1.0 at data.path)
        "path": None,  # CLEVR v1.0 folder (source clevr_folder)
        "variant": "clevr10",  # clevr10 (3-10 objects, K = 10 target rows) or clevr6 (at most 6 objects, 6 rows)
        "train_size": 70000,
        "eval_size": 15000,
        "batch_size": 512,
        "eval_batch_size": 256,
        "seed": 0,
        "image_size": 128,  # the full image resized to image_size x image_size (no crop)
        "render_size": [160, 240],  # procedural only: (H, W) rendered before the resize (CLEVR v1.0: 320x480)
        "cache_dir": None,  # shard cache of the rendered / decoded images (default: $SLOTLAB_CACHE or the user cache)
        "shard_size": 1000,
        "workers": 0,  # DataLoader workers decoding CLEVR v1.0 PNGs while building the cache
    },
    "model": {
        "kind": "slot_attention",  # or "slot_mlp" (the Slot MLP baseline)
        "num_slots": 10,
        "iters": 3,
        "slot_dim": 64,
        "mlp_hidden": 128,
        "encoder_channels": [64, 64, 64, 64],
        "encoder_strides": [1, 2, 2, 1],
        "head_hidden": 64,
        "position_embedding": True,
        "layer_norm_eps": DEFAULTS["model"]["layer_norm_eps"],
        "slot_attention": copy.deepcopy(DEFAULTS["model"]["slot_attention"]),
        "slot_mlp": {"grid": 8, "hidden": 512},
    },
    "optim": {
        "lr": 4e-4,
        "warmup_steps": 1000,
        "decay_rate": 0.5,
        "decay_steps": 50000,
        "grad_clip": None,
    },
    "trainer": {**copy.deepcopy(DEFAULTS["trainer"]), "max_steps": 150000, "val_every": 5000},
    "run": copy.deepcopy(DEFAULTS["run"]),
    "eval": copy.deepcopy(DEFAULTS["eval"]),
}


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


def check_set_prediction_config(cfg: dict[str, Any]) -> None:
    """Value checks beyond the types (the schema check is ``config.validate(cfg, SET_PREDICTION_DEFAULTS)``)."""
    d, m = cfg["data"], cfg["model"]
    if d["variant"] not in TARGET_ROWS:
        raise ConfigError(f"data.variant must be one of {sorted(TARGET_ROWS)}, got {d['variant']!r}")
    if m["num_slots"] != TARGET_ROWS[d["variant"]]:
        raise ConfigError(
            f"model.num_slots ({m['num_slots']}) must equal the number of target rows of data.variant "
            f"{d['variant']!r} ({TARGET_ROWS[d['variant']]}): the Hungarian loss matches K slots to K targets"
        )
    if d["source"] == "clevr_folder" and not d["path"]:
        raise ConfigError("data.source is 'clevr_folder': set data.path to the CLEVR v1.0 folder")


def attention_masks(out: SetPredictionOutput, grid: tuple[int, int]) -> torch.Tensor | None:
    """Attention of the last iteration as masks [B, K, h, w] (None for a model without attention)."""
    if out.attn is None or out.attn.shape[1] == 0:
        return None
    a = out.attn[:, -1]  # [B, K, N]
    return a.reshape(a.shape[0], a.shape[1], *grid)  # [B, K, h, w]


def attention_ari(
    out: SetPredictionOutput, mask: torch.Tensor, grid: tuple[int, int], undefined: str = "nan"
) -> torch.Tensor | None:
    """FG-ARI [B] of the last iteration's attention masks vs instance labels [B, S, S] downsampled (nearest);
    NaN where undefined (``undefined="nan"``, DeepMind's semantics) or 1.0 (``"one"``)."""
    a = attention_masks(out, grid)
    if a is None:
        return None
    if grid[0] != grid[1]:
        raise ValueError(f"attention ARI needs a square grid, got {grid}")
    true = resize_masks(mask, grid[0]).long()  # [B, h, w]
    return fg_ari(true.to(a.device), a.float(), undefined=undefined)


def figure6_rows(image: torch.Tensor, attn: torch.Tensor, grid: tuple[int, int], scale: int = 2) -> list:
    """Paper Figure 6: per image and iteration, the image then each slot's attention mask over the image.

    image: [B, 3, H, W] in [-1, 1]; attn: [B, T, K, N]. The masks (softmax over slots, so in [0, 1]) are
    upsampled to the image size (nearest); the image shows through where the slot attends, white elsewhere.
    """
    img = to_unit(image)  # [B, H, W, 3]
    b, t, k, _ = attn.shape
    a = attn.detach().float().cpu().view(b, t, k, *grid).numpy()
    ry, rx = img.shape[1] // grid[0], img.shape[2] // grid[1]
    colors = slot_colors(k)
    rows = []
    for i in range(b):
        for it in range(t):
            row = [img[i].repeat(scale, 0).repeat(scale, 1)]
            for j in range(k):
                m = a[i, it, j].repeat(ry, 0).repeat(rx, 1)[..., None]  # [H, W, 1]
                tile = (img[i] * m + (1.0 - m)).repeat(scale, 0).repeat(scale, 1)
                tile[:scale], tile[-scale:], tile[:, :scale], tile[:, -scale:] = (colors[j],) * 4
                row.append(tile)
            rows.append(row)
    return rows


class SetPredictionFigureCallback(L.Callback):
    """After each validation writes figures/attention_step_XXXXXXX.png and attention_latest.png (rank 0)."""

    def __init__(self, out_dir: Path, num_images: int = 2) -> None:
        self.out_dir = Path(out_dir)
        self.num_images = num_images

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch = getattr(pl_module, "last_val_batch", None)
        if batch is None or not trainer.is_global_zero or trainer.sanity_checking or batch["attn"].shape[1] == 0:
            return
        grid = pl_module.model.encoder.feature_resolution
        n = self.num_images
        img = grid_image(figure6_rows(batch["image"][:n], batch["attn"][:n], grid))
        save_png(img, self.out_dir / f"attention_step_{trainer.global_step:07d}.png")
        save_png(img, self.out_dir / "attention_latest.png")


class SetPredictionTask(L.LightningModule):
    """Hungarian-loss training of a set-prediction model; AP (+ attention ARI) at every validation."""

    def __init__(self, config: dict[str, Any], channels_last: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        self.model = build_set_prediction_model(config["model"], int(config["data"]["image_size"]))
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._val: dict[str, list[torch.Tensor]] = {"pred": [], "target": [], "ari": [], "loss": []}
        self.last_val_batch: dict[str, torch.Tensor] | None = None

    def forward(self, image: torch.Tensor, num_slots: int | None = None, iters: int | None = None):
        return self.model(image, num_slots=num_slots, iters=iters)

    def training_noise(self, batch_size: int) -> torch.Tensor | None:
        """Slot-init noise of this process's rows of the global batch at the current step (a pure function of
        seed and step, as in object discovery: exact resume, DDP equivalence); None for the Slot MLP."""
        sa = getattr(self.model, "slot_attention", None)
        if sa is None:
            return None
        world = self.trainer.world_size if self._trainer is not None else 1
        rank = self.trainer.global_rank if self._trainer is not None else 0
        rows = slice(rank * batch_size, (rank + 1) * batch_size)
        noise = step_noise(self.config["seed"], self.global_step, batch_size * world, sa.num_slots, sa.dim, rows)
        return noise.to(self.device)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        image = image_to_model(batch["image"], self.channels_last)
        out = self.model(image, noise=self.training_noise(image.shape[0]))
        loss = self.model.loss(out, batch["target"])
        return check_and_log_loss(self, loss)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        image = image_to_model(batch["image"], self.channels_last)
        noise = eval_noise(self.model, batch["index"], None, EVAL_SEED)
        out: SetPredictionOutput = self.model(image, noise=None if noise is None else noise.to(self.device))
        target = batch["target"].float()
        self._val["pred"].append(out.pred.detach().float())
        self._val["target"].append(target)
        self._val["loss"].append(self.model.loss(out, target).detach().reshape(1))
        if "mask" in batch:
            ari = attention_ari(
                out, batch["mask"], self.model.encoder.feature_resolution, self.config["eval"]["ari_undefined"]
            )
            if ari is not None:
                self._val["ari"].append(ari)
        if batch_idx == 0:
            n = self.config["trainer"]["num_figure_images"]
            self.last_val_batch = {"image": image[:n].detach().cpu(), "attn": out.attn[:n].detach().cpu()}

    def on_validation_epoch_end(self) -> None:
        if not self._val["pred"]:
            return
        pred = torch.cat(self._val["pred"])  # [n, K, 19]
        target = torch.cat(self._val["target"])  # [n, M, 19]
        if self.trainer.world_size > 1:  # AP is not a mean over images: rank over all processes' predictions
            pred = self.all_gather(pred).flatten(0, 1)
            target = self.all_gather(target).flatten(0, 1)
        table = average_precision_table(pred.cpu(), target.cpu(), PAPER_THRESHOLDS)
        for th, ap in table.items():
            self.log(f"val/ap_{threshold_name(th)}", float(ap), prog_bar=th in (-1.0, 1.0))
        self.log("val/loss", torch.cat(self._val["loss"]).mean(), sync_dist=True)
        if self._val["ari"]:
            scores = torch.cat(self._val["ari"]).float()
            defined = ~scores.isnan()
            # Mean over the images where the ARI is defined (NaN images skipped, counted in val/attn_ari_undefined).
            total = torch.stack([scores.nan_to_num().sum(), defined.sum().float(), (~defined).sum().float()])
            if self.trainer.world_size > 1:
                total = self.all_gather(total).sum(dim=0)
            self.log("val/attn_ari", total[0] / total[1].clamp(min=1), prog_bar=True)
            self.log("val/attn_ari_undefined", total[2])
        for v in self._val.values():
            v.clear()

    # Same optimiser / schedule and RNG restore as object discovery (they read self.config["optim"] only).
    configure_optimizers = ObjectDiscoveryTask.configure_optimizers
    on_load_checkpoint = ObjectDiscoveryTask.on_load_checkpoint

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        add_state(checkpoint, "set_prediction")


def build_set_prediction_trainer(cfg: dict[str, Any], run_dir: Path) -> tuple[L.Trainer, dict[str, Any]]:
    """The Lightning Trainer of a set-prediction run (best checkpoint by ``val/ap_inf``; Figure 6 callback)."""
    from slotlab.train.fit import build_trainer

    extra = [SetPredictionFigureCallback(run_dir / "figures")] if cfg["trainer"]["figure_every_val"] else []
    return build_trainer(cfg, run_dir, "val/ap_inf", "best-step{step:07d}-apinf{val/ap_inf:.4f}", extra)


def eval_noise(model: nn.Module, index: torch.Tensor, num_slots: int | None, seed: int) -> torch.Tensor | None:
    """Slot-init noise [B, K, D] of held-out images ``index`` [B]: a function of (seed, image index) only."""
    sa = getattr(model, "slot_attention", None)
    if sa is None:
        return None
    return index_noise(seed, index, num_slots or sa.num_slots, sa.dim)


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
        preds.append(out.pred.float().cpu())
        if "mask" in data:
            ari = attention_ari(
                out, data["mask"][start : start + batch_size], model.encoder.feature_resolution, ari_undefined
            )
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


def train_set_prediction(cfg: dict[str, Any], run_dir: Path, resume: bool | str | Path = False) -> dict[str, Any]:
    """Train set prediction as configured (validated config of task 'set_prediction') into ``run_dir``.

    Returns the run facts and the final held-out evaluation (``ap`` table, ``ap_inf`` ... ``ap_0.125``,
    ``attn_ari_mean`` where masks exist); also written to ``run_dir/results.json``.
    """
    if cfg["task"] != "set_prediction":
        raise ConfigError(f"task {cfg['task']!r} is not trainable by train_set_prediction")
    check_set_prediction_config(cfg)
    from slotlab.train.fit import checkpoint_to_resume, prepare_runtime, write_results  # lazy: fit.py imports this

    run_dir = Path(run_dir)
    t = cfg["trainer"]
    prepare_runtime(cfg)
    data = SetPredictionData(cfg["data"])
    channels_last = resolve_channels_last(t["channels_last"])
    task = SetPredictionTask(cfg, channels_last)
    if t["compile"]:
        task.model.compile()
    trainer, facts = build_set_prediction_trainer(cfg, run_dir)
    ckpt_path = checkpoint_to_resume(run_dir, resume)
    t0 = time.perf_counter()
    trainer.fit(task, datamodule=data, ckpt_path=ckpt_path)
    wall = time.perf_counter() - t0
    timer = next(c for c in trainer.callbacks if isinstance(c, StepTimer))
    result: dict[str, Any] = {
        "run_dir": str(run_dir),
        "task": "set_prediction",
        "model_kind": cfg["model"]["kind"],
        "global_step": trainer.global_step,
        "wall_seconds": timer.wall_seconds_before + wall,  # all sessions of the run (see StepTimer)
        "session_wall_seconds": wall,
        "resumed_from_step": timer.resumed_from_step,
        "train_seconds": timer.train_seconds,
        "precision": facts["precision"],
        "accelerator": facts["accelerator"],
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
    }
    if trainer.is_global_zero:
        data.setup("validate")
        result.update(
            evaluate_model(
                task.model,
                data.eval,
                cfg["data"]["eval_batch_size"],
                channels_last=channels_last,
                ari_undefined=cfg["eval"]["ari_undefined"],
            )
        )
        result["variant"] = cfg["data"]["variant"]
        result["source"] = cfg["data"]["source"]
        write_results(run_dir, result)
    return result


def load_set_prediction(path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """-> (model in eval mode on CPU, validated config, checkpoint dict) from a .ckpt file or a run folder."""
    return load_task_checkpoint(
        path, "set_prediction", lambda cfg, hp: build_set_prediction_model(cfg["model"], int(cfg["data"]["image_size"]))
    )


def evaluate_set_prediction(
    checkpoint: str | Path,
    num_slots: int | None = None,
    iters: int | None = None,
    num_images: int | None = None,
    *,
    variant: str | None = None,
    exact_objects: int | None = None,
    seed: int = EVAL_SEED,
    batch_size: int | None = None,
    device: str | None = None,
    ari_undefined: str | None = None,
    data: dict[str, Any] | None = None,
    split: str = "eval",
) -> dict[str, Any]:
    """AP table (+ attention-mask ARI) of a checkpoint on the held-out split of its config's data.

    Args:
        checkpoint: a .ckpt file or a run folder (its last.ckpt).
        num_slots, iters: K and T at test time (default: the training values; paper Figure 5 center / right).
        num_images: the first ``num_images`` held-out images (default: the config's ``data.eval_size``).
        variant: held-out data variant ("clevr6" / "clevr10"); default: the config's, or "clevr10" when
            ``num_slots`` exceeds the config variant's object count (a CLEVR6 model tested with K = 10).
        exact_objects: keep only the images with exactly this many objects (paper Figure 5 right).
        seed: seed of the slot-initialisation noise.
        ari_undefined: "nan" (DeepMind) or "one" (scikit-learn) where the ARI is 0/0; default: the run's.
        data: entries replacing the config's ``data`` ones (e.g. ``source: clevr_folder`` and its ``path``).
        split: held-out split, "eval" or (procedural data) "test"; recorded in the result.
    """
    model, cfg, _ = load_set_prediction(checkpoint)
    d = {**cfg["data"], **(data or {})}
    if variant is None:
        variant = d["variant"]
        if num_slots is not None and num_slots > TARGET_ROWS[variant]:
            variant = "clevr10"
    d["variant"] = variant
    n = int(num_images or d["eval_size"])
    data = load_split(d, split, n, ("image", "target", "mask", "num_objects"))
    if exact_objects is not None:
        keep = data["num_objects"] == exact_objects
        data = {k: v[keep] for k, v in data.items()}
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev)
    result = evaluate_model(
        model,
        data,
        int(batch_size or d["eval_batch_size"]),
        num_slots,
        iters,
        seed=seed,
        ari_undefined=ari_undefined or cfg["eval"]["ari_undefined"],
    )
    result.update(
        checkpoint=str(checkpoint),
        split=split,
        variant=variant,
        source=d["source"],
        model_kind=cfg["model"]["kind"],
        exact_objects=exact_objects,
        seed=seed,
        iters=iters if iters is not None or cfg["model"]["kind"] == "slot_mlp" else cfg["model"]["iters"],
    )
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


@torch.no_grad()
def set_prediction_figures(
    checkpoint: str | Path,
    out_dir: Path | None = None,
    num_images: int = 4,
    num_slots: int | None = None,
    iters: int | None = None,
    seed: int = EVAL_SEED,
    split: str = "eval",
) -> list[Path]:
    """Paper Figure 6 from a set-prediction checkpoint: per held-out image (of ``split``) and iteration, the
    attention mask of every slot over the image. Written to ``out_dir`` (default: <run>/figures/figure6_attention.png).
    """
    model, cfg, ckpt = load_set_prediction(checkpoint)
    ckpt_path = Path(ckpt["_path"])
    run_dir = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    out_dir = Path(out_dir) if out_dir else run_dir / "figures"
    data = load_split(cfg["data"], split, num_images, ("image",))
    image = image_to_model(data["image"], channels_last=False)
    noise = eval_noise(model, torch.arange(num_images), num_slots, seed)
    out = model(image, num_slots=num_slots, iters=iters, noise=noise)
    if out.attn.shape[1] == 0:
        raise ValueError(f"{ckpt_path}: a Slot MLP model has no attention maps to draw")
    rows = figure6_rows(image, out.attn, model.encoder.feature_resolution)
    return [save_png(grid_image(rows), out_dir / "figure6_attention.png")]
