"""Object-centre separation: whether an object-discovery model gives every object a slot of its own, measured on
images that have object centres but no masks (real CLEVR renders with scene JSON; issue 23). Not in the paper:
it stands in for FG-ARI where no ground-truth masks exist.

Per image, with the model's segmentation as the argmax over slots of its alpha masks (``labels`` [B, H, W]) and
each object's centre pixel (the scene JSON's ``pixel_coords`` mapped through the model's crop and resize):

* the **background slot** is the slot that owns the most pixels of the image (ties: the lowest slot index).
  On CLEVR the ground and sky cover most of every image (in 64 built-in CLEVR10 reference crops: at least 61 %,
  median 77 %; the largest object at most 16 %), so the largest segment is the background's whenever the model
  has one; a model that lumps everything into one slot gets every object counted as "in the background". The
  rule needs nothing but the model's output (no scene geometry) and picks exactly one slot per image.
* an object **counts** (is separated) when the slot at its centre is not the background slot and no other
  object of the same image has its centre in that slot;
* an object whose centre falls outside the crop the model sees is **excluded** (neither separated nor not) and
  counted apart, as ``outside``.

Everything is computed for a whole batch at once: no Python loop over pixels, slots, objects or images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COUNTS = ("separated", "counted", "in_background", "shared", "outside")


def background_slot(labels: torch.Tensor, num_slots: int) -> torch.Tensor:
    """The background slot [B] of argmax labels [B, H, W] (values 0..K-1): the slot with the largest area (the
    lowest index among equals)."""
    area = F.one_hot(labels.flatten(1), num_slots).sum(1)  # [B, K] pixels per slot
    return area.argmax(1)  # [B]; argmax returns the first maximum


def centre_separation(
    labels: torch.Tensor, centres: torch.Tensor, real: torch.Tensor, num_slots: int
) -> dict[str, torch.Tensor]:
    """Per-image counts (int64 [B] each, keys :data:`COUNTS`) of the object-centre separation (module docstring).

    Args:
        labels: argmax slot per pixel, int [B, H, W] with values 0..K-1.
        centres: (row, column) of each object's centre at the labels' resolution, int [B, O, 2]; may lie outside
            [0, H) x [0, W) (then the object is ``outside``).
        real: which of the O rows are objects (the others are padding), bool [B, O].
        num_slots: K.

    Returns ``separated`` (objects that count), ``counted`` (objects inside the image: the denominator),
    ``in_background`` (counted objects whose centre is in the background slot), ``shared`` (counted objects
    outside the background slot whose slot holds another counted object's centre) and ``outside``.
    """
    b, h, w = labels.shape
    row, col = centres[..., 0].long(), centres[..., 1].long()  # [B, O]
    inside = real & (row >= 0) & (row < h) & (col >= 0) & (col < w)  # [B, O]
    flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long()  # [B, O] pixel index (clamped; masked below)
    slot = labels.flatten(1).long().gather(1, flat)  # [B, O] slot at each centre
    occupancy = torch.zeros(b, num_slots, dtype=torch.long, device=labels.device)
    occupancy.scatter_add_(1, slot, inside.long())  # [B, K] counted centres per slot
    alone = occupancy.gather(1, slot) == 1  # [B, O] (for counted objects: no other centre in the slot)
    background = slot == background_slot(labels, num_slots)[:, None]  # [B, O]
    return {
        "separated": (inside & alone & ~background).sum(1),
        "counted": inside.sum(1),
        "in_background": (inside & background).sum(1),
        "shared": (inside & ~background & ~alone).sum(1),
        "outside": (real & ~inside).sum(1),
    }
