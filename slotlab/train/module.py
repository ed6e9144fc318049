"""The one LightningModule of every task: Adam with the reference warmup + decay schedule, slot-init noise as a
pure function of (seed, step), NaN/Inf guard, checkpoint format and RNG state; the task (``config["task"]``, a
:class:`slotlab.tasks.base.Task`) says the model, the loss and the held-out metrics, which this module keeps over a
validation, gathers over processes and logs. Paper: Sections 4.1 / 4.2
(training setups) and the reference code's learning-rate schedule.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from slotlab.checkpoint_format import add_state, restore_state
from slotlab.errors import UserError
from slotlab.modules.init import encoder_init_, reference_init_
from slotlab.noise import step_noise
from slotlab.tasks import get_task
from slotlab.tasks.common import ValidationContext, image_to_model, slot_attention_of
from slotlab.train.schedule import lr_factor


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or Inf."""


class SlotModule(L.LightningModule):
    """Training and validation of ``config``'s task. Checkpoints hold the model's weights under ``model.`` and
    the hyper-parameters ``config``, ``image_size`` and ``channels_last``."""

    def __init__(
        self, config: dict[str, Any], image_size: tuple[int, int] | None = None, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        self.task = get_task(config["task"])
        model = self.task.build_model(config, image_size)
        self.model = reference_init_(model, config["model"].get("weight_init", "torch"))  # model.weight_init
        encoder_init_(self.model, config["model"].get("encoder_init", "weight_init"))  # model.encoder_init
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.val_store: dict[str, list[torch.Tensor]] = {}
        self.last_val_batch: dict[str, torch.Tensor] | None = None
        self.replica_max_diff: float | None = None

    def forward(self, image: torch.Tensor, num_slots: int | None = None, iters: int | None = None):
        return self.model(image, num_slots=num_slots, iters=iters)

    def training_noise(self, batch_size: int) -> torch.Tensor | None:
        """This process's rows of the global batch's slot-init noise at the current step: [B, K, D] (a pure
        function of seed and step: exact resume, DDP equivalence); None for a model without Slot Attention."""
        sa = slot_attention_of(self.model)
        if sa is None:
            return None
        world = self.trainer.world_size if self._trainer is not None else 1
        rank = self.trainer.global_rank if self._trainer is not None else 0
        rows = slice(rank * batch_size, (rank + 1) * batch_size)
        noise = step_noise(self.config["seed"], self.global_step, batch_size * world, sa.num_slots, sa.noise_dim, rows)
        return noise.to(self.device)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        image = image_to_model(batch["image"], self.channels_last)  # [B, 3, H, W] in [-1, 1]
        out = self.task.forward(self.model, batch, image, self.training_noise(image.shape[0]))
        loss = self.task.loss(self.model, out, batch, image)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at step {self.global_step}; stopping. The last good checkpoint "
                "is kept in the run's checkpoints/ folder. Try a lower optim.lr, optim.grad_clip, or "
                "trainer.precision=32-true."
            )
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], prog_bar=False)
        return loss

    def validation_context(self, want_figures: bool = False) -> ValidationContext:
        """What the task's validation needs of this run (config, layout, step, device, processes)."""
        world = self.trainer.world_size if self._trainer is not None else 1
        return ValidationContext(
            self.config, self.channels_last, self.global_step, self.device, want_figures, world, self.all_gather
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        kept = self.task.validation_step(self.model, batch, batch_idx, self.validation_context(batch_idx == 0))
        for name, value in kept.values.items():
            self.val_store.setdefault(name, []).append(value)
        if kept.figures is not None:
            n = self.config["trainer"]["num_figure_images"]
            self.last_val_batch = {k: v[:n].detach().cpu() for k, v in kept.figures.items()}

    def on_validation_epoch_end(self) -> None:
        if any(self.val_store.values()):
            values = {k: torch.cat(v) for k, v in self.val_store.items() if v}
            for name, value in self.task.validation_metrics(values, self.validation_context()).items():
                self.log(name, value, prog_bar=name in self.task.progress_metrics)
        for v in self.val_store.values():
            v.clear()

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
            opt,
            lambda step: lr_factor(
                step,
                o["warmup_steps"],
                o["decay_rate"],
                o["decay_steps"],
                o["cooldown_steps"],
                self.config["trainer"]["max_steps"],
                o.get("schedule", "exponential"),  # configs of checkpoints before the key: the paper's
            ),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Format version, task, and the global RNG states so a resumed run continues the same streams.
        add_state(checkpoint, self.task.name)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_state(checkpoint)
