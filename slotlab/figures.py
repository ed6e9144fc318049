"""``slotlab figures``: the paper's figure of a trained model, for every task, in one call (e.g. object
discovery: Figure 3 (a) slots, (b) attention per iteration, (c) per-iteration reconstructions; set prediction:
Figure 6, attention masks per slot and iteration).

:func:`make_figures` loads a checkpoint, takes the first ``num_images`` images of a held-out split from the run's
own data (the procedural generator, the cache, or the ``data.path`` file it was trained on: the same held-out
loader as training and ``slotlab eval``) and lets the task's presenter build them
(:meth:`slotlab.tasks.presenter.Presenter.figures`): labelled grids (column titles, iteration rows, slot legend, the
model and its training step in the title), which :mod:`slotlab.drawing` writes into the run's ``figures/`` folder as
PNG and, on request, PDF / SVG, or any figure that writes itself (``write(path, formats, video_format)``, e.g. an
animation: a GIF, or an MP4 with ``video_format="mp4"``).
Everything is deterministic: fixed images and slot-init noise from a private generator seeded with ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slotlab.drawing import LabelledGrid, check_formats, checkpoint_label, write
from slotlab.inference.evaluation_keys import set_evaluation_options
from slotlab.inference.loading import load_model
from slotlab.inference.merge_option import describe as describe_merge
from slotlab.inference.merge_option import set_merge_slots
from slotlab.mp4 import check_video_format
from slotlab.runs import run_dir_of
from slotlab.tasks import get_task
from slotlab.tasks.common import FigureOptions

__all__ = ["checkpoint_label", "figure_grids", "make_figures", "write_figure"]


def figure_grids(
    checkpoint: str | Path,
    num_images: int = 4,
    num_slots: int | None = None,
    iters: int | None = None,
    split: str = "eval",
    seed: int | None = None,
    scale: int | None = None,
    name: str | None = None,
    merge_slots: float | str | None = None,
    settings: Sequence[str] = (),
) -> tuple[dict[str, Any], Path]:
    """The paper figures of ``checkpoint`` (a .ckpt file or a run folder) by file name (labelled grids, or figures
    that write themselves), and the run folder's ``figures/``.

    Args:
        num_images: number of held-out images (the first ones of the split).
        num_slots: K at test time (default: the training K). Per-slot initialisation fixes K (ValueError).
        iters: T at test time (default: the training T).
        split: held-out split, "eval" or "test".
        seed: seed of the initial-slot noise (default: the task's figure seed).
        scale: integer upscaling of the tiles (default: at least ~128 pixels per image).
        name: the model's name in the titles (default: :func:`checkpoint_label` of the checkpoint).
        merge_slots: object discovery: ``model.merge_slots`` to draw with (a threshold or ``"off"``; default: the
            model's own; :mod:`slotlab.inference.merge_option`).
        settings: keys that act at evaluation only, set for this drawing (``["model.eval_iters=3", ...]``;
            :func:`slotlab.inference.evaluation_keys.set_evaluation_options`); named in the titles.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    model, cfg, ckpt = load_model(checkpoint)
    if settings:
        cfg = set_evaluation_options(model, cfg, list(settings))
    if merge_slots is not None:
        cfg = set_merge_slots(model, cfg, merge_slots)
    task = get_task(cfg["task"])
    data = task.heldout(cfg["data"], split, num_images)
    data = {k: v[:num_images] for k, v in data.items()}
    step = ckpt.get("global_step")
    about = checkpoint_label(ckpt["_path"]) if name is None else name
    about += f" · step {step}" if step is not None else ""
    if merge_slots is not None:
        about += f" · merge_slots {describe_merge(cfg['model']['merge_slots'])}"
    about += "".join(f" · {text.strip()}" for text in settings)
    options = FigureOptions(f"{about} · {split} images", num_slots, iters, seed, scale)
    grids = task.presenter.figures(model, cfg, data, options)
    return grids, run_dir_of(ckpt["_path"]) / "figures"


def make_figures(
    checkpoint: str | Path,
    out_dir: Path | None = None,
    *args: Any,
    formats: Sequence[str] = (),
    video_format: str = "gif",
    **kwargs: Any,
) -> list[Path]:
    """Write the paper figures of ``checkpoint`` (a .ckpt file or a run folder); returns the paths written (per
    figure the PNG, then its ``formats`` files).

    Args:
        out_dir: where to write; default ``<run_dir>/figures/``.
        args, kwargs: which figures: the arguments of :func:`figure_grids` after ``checkpoint``, in its order.
        formats: vector formats to write besides the PNG: "pdf", "svg".
        video_format: how an animation (a video model's figure) is written: "gif" or "mp4" (PyAV, the ``video``
            extra: :class:`slotlab.mp4.VideoEncoderMissingError` without it, raised before the model is loaded).
    """
    check_formats(formats)
    video_format = check_video_format(video_format)
    grids, figures_dir = figure_grids(checkpoint, *args, **kwargs)
    out = Path(out_dir) if out_dir is not None else figures_dir
    return [p for file, figure in grids.items() for p in write_figure(figure, out / file, formats, video_format)]


def write_figure(figure: Any, path: Path, formats: Sequence[str] = (), video_format: str = "gif") -> list[Path]:
    """Write one figure: a :class:`LabelledGrid` as PNG (+ ``formats``; ``video_format`` does not apply), anything
    else by its own ``write(path, formats, video_format=...)`` (e.g. a video task's animation, as a GIF or an MP4);
    returns the paths written."""
    if isinstance(figure, LabelledGrid):
        return write(figure, path, formats)
    return list(figure.write(path, formats, video_format=video_format))
