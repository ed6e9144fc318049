"""Paper Figure 3 from a trained object-discovery checkpoint, in one call (paper Section 4.1, Figure 3).

:func:`make_figures` loads a checkpoint, takes the first ``num_images`` images of a held-out split and writes
three PNGs (by default into the run's ``figures/`` folder):

* ``figure3a_slots.png`` (Figure 3a): image | reconstruction | combined mask | per-slot reconstruction x alpha
  mask, with a coloured border per slot that matches the colours of the combined mask.
* ``figure3b_attention.png`` (Figure 3b): the Slot Attention maps ``attn`` of every iteration t = 1..T, one
  row per (image, iteration), one column per slot.
* ``figure3c_iterations.png`` (Figure 3c): reconstructions and decoder masks after each iteration: the slots
  after t = 1..T iterations, all started from the SAME sampled initial slots, are decoded (the model is
  trained to reconstruct only after the last iteration, as in the paper). One row per (image, iteration).

Everything is deterministic: the images are a fixed split of the procedural dataset and the initial slots come
from a private generator seeded with ``seed`` (the global torch RNG is not touched).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from slotlab.data.datamodule import to_tensors
from slotlab.data.splits import generate_split
from slotlab.models.object_discovery import ObjectDiscoveryModel
from slotlab.modules.slot_attention import SlotAttention
from slotlab.train.checkpoints import load_object_discovery
from slotlab.train.object_discovery import image_to_model
from slotlab.viz import attention_rows, discovery_rows, grid_image, save_png

FIGURE_SEED = 0
FIGURE_NAMES = ("figure3a_slots.png", "figure3b_attention.png", "figure3c_iterations.png")


def run_dir_of_checkpoint(ckpt_path: str | Path) -> Path:
    """``RUN/checkpoints/x.ckpt`` -> ``RUN``; any other checkpoint -> its folder."""
    p = Path(ckpt_path)
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def default_scale(resolution: tuple[int, int], target: int = 128) -> int:
    """Integer upscaling so that small images (35x35 Tetrominoes) are drawn at least ~``target`` pixels tall."""
    return max(1, math.ceil(target / max(1, min(resolution))))


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


def make_figures(
    checkpoint: str | Path,
    out_dir: Path | None = None,
    num_images: int = 4,
    num_slots: int | None = None,
    iters: int | None = None,
    split: str = "eval",
    seed: int = FIGURE_SEED,
    scale: int | None = None,
) -> list[Path]:
    """Write paper Figure 3 (a), (b), (c) for ``checkpoint`` (a .ckpt file or a run folder).

    Args:
        checkpoint: path of a checkpoint, or a run folder (its ``checkpoints/last.ckpt`` is used).
        out_dir: where to write; default ``<run_dir>/figures/``.
        num_images: number of held-out images (the first ones of the split).
        num_slots: K at test time (default: the training K). Per-slot initialisation fixes K (ValueError).
        iters: T at test time (default: the training T).
        split: held-out split of the procedural dataset, "eval" or "test".
        seed: seed of the initial-slot noise.
        scale: integer upscaling of the tiles (default: at least ~128 pixels per image).

    Returns the paths of the three PNGs, in the order (a), (b), (c); for a model without Slot Attention (the
    Slot MLP baseline) only (a) is written.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    model, cfg, ckpt = load_object_discovery(checkpoint)
    run_dir = run_dir_of_checkpoint(ckpt["_path"])
    out = Path(out_dir) if out_dir is not None else run_dir / "figures"
    d = cfg["data"]
    t_iters = cfg["model"]["iters"] if iters is None else int(iters)
    if t_iters < 1:
        raise ValueError(f"iters must be >= 1, got {t_iters}")
    data = to_tensors(generate_split(d["name"], split, num_images, d["seed"]))
    image = image_to_model(data["image"], channels_last=False)  # [B, 3, H, W] in [-1, 1]
    s = default_scale(model.resolution) if scale is None else int(scale)

    if not isinstance(getattr(model, "slot_attention", None), SlotAttention):
        # A model without Slot Attention (e.g. the Slot MLP baseline): no attention, no iterations; (a) only.
        with torch.no_grad():
            out_a = model(image, num_slots=num_slots)
        fig_a = grid_image(discovery_rows(image, out_a.recon, out_a.masks, out_a.recons, s))
        return [save_png(np.ascontiguousarray(fig_a), out / FIGURE_NAMES[0])]

    res = per_iteration_outputs(model, image, num_slots, t_iters, seed)
    recon, recons, masks = res["recon"][-1], res["recons"][-1], res["masks"][-1]  # after T iterations

    # (a) image | recon | combined mask | slot_k recon x alpha.
    fig_a = grid_image(discovery_rows(image, recon, masks, recons, s))
    # (b) attention per iteration per slot (one row per image and iteration).
    grid = model.encoder.feature_resolution
    fig_b = grid_image(attention_rows(image, res["attn"], grid, s))
    # (c) per-iteration decodes: for each image, rows t = 1..T.
    per_t = [discovery_rows(image, res["recon"][t], res["masks"][t], res["recons"][t], s) for t in range(t_iters)]
    rows_c = [per_t[t][b] for b in range(image.shape[0]) for t in range(t_iters)]
    fig_c = grid_image(rows_c)

    paths = []
    for name, array in zip(FIGURE_NAMES, (fig_a, fig_b, fig_c), strict=True):
        paths.append(save_png(np.ascontiguousarray(array), out / name))
    return paths
