"""Failed-seed detection (paper Section 4.1: "in rare cases it can get stuck in a suboptimal solution ...
where it segments the image into stripes").

Criterion (cheap, label-free): the *layout ARI*, the ARI between the predicted segmentations (argmax of the
masks, all pixels) of different held-out images, paired as (i, i+1). A model that found objects segments each
image by its content, so two images' segmentations agree little (ground-truth Tetrominoes masks: ~0.08; a good
model that spreads the background over slots in bands: ~0.5-0.6). A stuck model cuts every image into the same
regions whatever it shows (stripes: ~1.0). After ``after_steps`` (default: twice the warmup), a layout ARI above
``threshold`` (0.85) at ``patience`` consecutive validations flags the run: ``warn`` writes a warning to the
log and to ``FAILED_SEED.txt`` in the run folder; ``restart`` stops the run so that ``slotlab train`` starts
again from a new seed (``trainer.failed_seed_restarts`` times at most).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L

from slotlab.errors import UserError
from slotlab.metrics.ari import layout_ari  # noqa: F401 (its home before slotlab.metrics)


class FailedSeedError(UserError, RuntimeError):
    """The run looks stuck in a content-independent segmentation (e.g. stripes)."""


class FailedSeedMonitor(L.Callback):
    """Flags a run whose held-out ``metric`` (a task's ``failed_seed_metric``: the layout ARI of
    :func:`slotlab.metrics.ari.layout_ari`) stays above ``threshold`` (see the module docstring)."""

    def __init__(
        self,
        run_dir: Path,
        action: str,
        threshold: float,
        after_steps: int,
        patience: int = 2,
        metric: str = "val/layout_ari",
    ) -> None:
        if action not in ("warn", "restart", "off"):
            raise ValueError(f"trainer.failed_seed must be warn, restart or off, got {action!r}")
        self.run_dir = Path(run_dir)
        self.action = action
        self.threshold = threshold
        self.after_steps = after_steps
        self.patience = patience
        self.metric = metric
        self.strikes = 0
        self.flagged = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if self.action == "off" or value is None or trainer.sanity_checking or trainer.global_step < self.after_steps:
            return
        self.strikes = self.strikes + 1 if float(value) > self.threshold else 0
        if self.strikes < self.patience or self.flagged:
            return
        self.flagged = True
        message = (
            f"possible failed seed at step {trainer.global_step}: layout ARI {float(value):.3f} > {self.threshold} "
            f"for {self.strikes} validations: the masks split every image into the same regions (e.g. stripes) "
            "instead of following objects. Consider another seed (trainer.failed_seed=restart does it for you)."
        )
        if trainer.is_global_zero:
            (self.run_dir / "FAILED_SEED.txt").write_text(message + "\n")
        if self.action == "restart":
            raise FailedSeedError(message)
        warnings.warn(message, stacklevel=1)

    def state_dict(self) -> dict:
        return {"strikes": self.strikes, "flagged": self.flagged}

    def load_state_dict(self, state_dict: dict) -> None:
        self.strikes = state_dict.get("strikes", 0)
        self.flagged = state_dict.get("flagged", False)
