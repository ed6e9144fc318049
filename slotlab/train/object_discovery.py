"""LightningModule for unsupervised object discovery (paper Section 4.1): MSE reconstruction training with
Adam + warmup/decay, FG-ARI on the held-out images at every validation.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from slotlab.metrics.ari import fg_ari, nan_summary
from slotlab.models.object_discovery import ObjectDiscoveryModel, ObjectDiscoveryOutput
from slotlab.models.slot_mlp import build_object_discovery_slot_mlp
from slotlab.train.failed_seed import layout_ari
from slotlab.train.noise import index_noise, step_noise
from slotlab.train.schedule import lr_factor
from slotlab.train.state import add_state, restore_state

EVAL_SEED = 1234  # slot-init noise at evaluation: a function of (EVAL_SEED, image index), see train/noise.py


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


def check_and_log_loss(module: L.LightningModule, loss: torch.Tensor) -> torch.Tensor:
    """Stop with a clear message on a NaN/Inf loss (the last good checkpoint stays); log loss and lr."""
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"training loss is {loss.item()} at step {module.global_step}; stopping. The last good checkpoint "
            "is kept in the run's checkpoints/ folder. Try a lower optim.lr, optim.grad_clip, or "
            "trainer.precision=32-true."
        )
    module.log("train/loss", loss, prog_bar=True)
    module.log("train/lr", module.optimizers().param_groups[0]["lr"], prog_bar=False)
    return loss


def build_model(model_cfg: dict[str, Any], image_size: tuple[int, int]) -> nn.Module:
    """The object-discovery model a config's ``model`` section describes (``kind``: slot_attention | slot_mlp)."""
    kwargs = dict(
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
    )
    if model_cfg["kind"] == "slot_attention":
        return ObjectDiscoveryModel(**kwargs)
    if model_cfg["kind"] == "slot_mlp":
        return build_object_discovery_slot_mlp(model_cfg, image_size)
    raise ValueError(f"model.kind must be slot_attention or slot_mlp, got {model_cfg['kind']!r}")


def run_model(model: nn.Module, image: torch.Tensor, noise: torch.Tensor | None, **kwargs) -> ObjectDiscoveryOutput:
    """Forward with the given slot-init noise (models without Slot Attention take no noise)."""
    if getattr(model, "slot_attention", None) is None:
        return model(image, **kwargs)
    return model(image, noise=noise, **kwargs)


def slot_shape(model: nn.Module, num_slots: int | None = None) -> tuple[int, int]:
    """(K, D) of the slot-init noise, or (0, 0) for models without Slot Attention."""
    sa = getattr(model, "slot_attention", None)
    if sa is None:
        return 0, 0
    return (num_slots or sa.num_slots), sa.dim


def image_to_model(image_uint8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float [B, 3, H, W] in [-1, 1] (the reference code's scaling)."""
    x = image_uint8.float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class ObjectDiscoveryTask(L.LightningModule):
    def __init__(self, config: dict[str, Any], image_size: tuple[int, int], channels_last: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        self.model = build_model(config["model"], tuple(image_size))
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._val_scores: list[torch.Tensor] = []
        self._val_mse: list[torch.Tensor] = []
        self._val_index: list[torch.Tensor] = []
        self._val_layout: list[torch.Tensor] = []
        self.last_val_batch: dict[str, torch.Tensor] | None = None

    def forward(self, image: torch.Tensor, num_slots: int | None = None, iters: int | None = None):
        return self.model(image, num_slots=num_slots, iters=iters)

    def training_noise(self, batch_size: int) -> torch.Tensor:
        """This process's rows of the global batch's slot-init noise at the current step: [B, K, D]."""
        world = self.trainer.world_size if self._trainer is not None else 1
        rank = self.trainer.global_rank if self._trainer is not None else 0
        k, d = slot_shape(self.model)
        rows = slice(rank * batch_size, (rank + 1) * batch_size)
        noise = step_noise(self.config["seed"], self.global_step, batch_size * world, k, d, rows)
        return noise.to(self.device)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        image = image_to_model(batch["image"], self.channels_last)
        out = run_model(self.model, image, self.training_noise(image.shape[0]))
        loss = self.model.loss(out, image)
        return check_and_log_loss(self, loss)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        image = image_to_model(batch["image"], self.channels_last)
        noise = index_noise(EVAL_SEED, batch["index"], *slot_shape(self.model)).to(self.device)
        out = run_model(self.model, image, noise)
        self._val_scores.append(fg_ari(batch["mask"].long(), out.masks, self.config["eval"]["ari_undefined"]))
        self._val_mse.append(((out.recon - image) ** 2).mean(dim=(1, 2, 3)))
        self._val_index.append(batch["index"])
        self._val_layout.append(layout_ari(out.masks).reshape(1))
        if batch_idx == 0:
            n = self.config["trainer"]["num_figure_images"]
            self.last_val_batch = {
                "image": image[:n].detach().cpu(),
                "recon": out.recon[:n].detach().cpu(),
                "masks": out.masks[:n].detach().cpu(),
                "recons": out.recons[:n].detach().cpu(),
                "attn": out.attn[:n].detach().cpu(),
            }

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        scores = torch.cat(self._val_scores).float()
        mse = torch.cat(self._val_mse).float()
        index = torch.cat(self._val_index).long()
        self._val_scores.clear()
        self._val_mse.clear()
        self._val_index.clear()
        layout = torch.cat(self._val_layout).nanmean()
        self._val_layout.clear()
        if self.trainer.world_size > 1:
            # Gather every process's per-image scores; the distributed sampler pads shards by repeating
            # images, so keep each image once. Every process then logs the same full-set numbers.
            scores, mse, index = (self.all_gather(t).flatten() for t in (scores, mse, index))
            order = torch.argsort(index, stable=True)
            index, scores, mse = index[order], scores[order], mse[order]
            first = torch.ones_like(index, dtype=torch.bool)
            first[1:] = index[1:] != index[:-1]
            scores, mse = scores[first], mse[first]
        # Means over the images where FG-ARI is defined; the undefined (NaN) ones are counted.
        defined = scores[~scores.isnan()]
        self.log("val/fg_ari", defined.mean() if len(defined) else scores.new_tensor(float("nan")), prog_bar=True)
        self.log("val/fg_ari_std", defined.std(unbiased=False) if len(defined) else scores.new_tensor(float("nan")))
        self.log("val/fg_ari_undefined", float(len(scores) - len(defined)))
        self.log("val/mse", mse.mean())
        self.log("val/layout_ari", layout, sync_dist=True)

    def on_train_end(self) -> None:
        # Under DDP every process must hold the same weights; record the largest difference between replicas.
        flat = torch.cat([p.detach().flatten().float() for p in self.model.parameters()])
        if self.trainer.world_size > 1:
            gathered = self.all_gather(flat)  # [world, P]
            self.replica_max_diff = float((gathered - gathered[0]).abs().max())
        else:
            self.replica_max_diff = 0.0

    def configure_optimizers(self):
        o = self.config["optim"]
        fused = bool(torch.cuda.is_available() and self.device.type == "cuda")
        opt = torch.optim.Adam(self.parameters(), lr=o["lr"], fused=fused or None)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, o["warmup_steps"], o["decay_rate"], o["decay_steps"])
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Format version, task, and the global RNG states so a resumed run continues the same streams.
        add_state(checkpoint, "object_discovery")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_state(checkpoint)


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
        scores.append(fg_ari(masks[start : start + batch_size].long(), out.masks, undefined))
    return torch.cat(scores).cpu().numpy()


def summarize(scores: np.ndarray) -> dict[str, float]:
    """Mean / std / median over the images where FG-ARI is defined, and the count of undefined (skipped) ones."""
    s = nan_summary(scores, prefix="fg_ari")
    ok = scores[~np.isnan(scores)]
    s["frac_above_0.9"] = float(np.mean(ok > 0.9)) if len(ok) else math.nan
    return s
