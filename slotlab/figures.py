"""``slotlab figures``: the paper's figure of a trained model, for every task, in one call (object discovery:
Figure 3 (a) slots, (b) attention per iteration, (c) per-iteration reconstructions; set prediction: Figure 6,
attention masks per slot and iteration).

:func:`make_figures` loads a checkpoint, takes the first ``num_images`` images of a held-out split from the run's
own data (the procedural generator, the cache, or the ``data.path`` file it was trained on: the same held-out
loader as training and ``slotlab eval``) and lets the task draw them into the run's ``figures/`` folder.
Everything is deterministic: fixed images and slot-init noise from a private generator seeded with ``seed``.
"""

from __future__ import annotations

from pathlib import Path

from slotlab.runs import run_dir_of
from slotlab.tasks import get_task
from slotlab.tasks.object_discovery import FIGURE_NAMES, per_iteration_outputs
from slotlab.train.checkpoints import load_model

__all__ = ["FIGURE_NAMES", "make_figures", "per_iteration_outputs"]


def make_figures(
    checkpoint: str | Path,
    out_dir: Path | None = None,
    num_images: int = 4,
    num_slots: int | None = None,
    iters: int | None = None,
    split: str = "eval",
    seed: int | None = None,
    scale: int | None = None,
) -> list[Path]:
    """Write the paper figure of ``checkpoint`` (a .ckpt file or a run folder); returns the PNG paths.

    Args:
        out_dir: where to write; default ``<run_dir>/figures/``.
        num_images: number of held-out images (the first ones of the split).
        num_slots: K at test time (default: the training K). Per-slot initialisation fixes K (ValueError).
        iters: T at test time (default: the training T).
        split: held-out split, "eval" or "test".
        seed: seed of the initial-slot noise (default: the task's figure seed).
        scale: integer upscaling of the tiles (default: at least ~128 pixels per image).
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    model, cfg, ckpt = load_model(checkpoint)
    task = get_task(cfg["task"])
    out = Path(out_dir) if out_dir is not None else run_dir_of(ckpt["_path"]) / "figures"
    data = task.heldout(cfg["data"], split, num_images)
    data = {k: v[:num_images] for k, v in data.items()}
    return task.figures(model, cfg, data, out, num_slots, iters, seed, scale)
