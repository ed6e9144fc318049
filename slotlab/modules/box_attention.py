"""A first-frame box prior on the corrector's attention of a conditional SAVi model.

Not in SAVi (``model.box_attention``, default off). SAVi's conditional initialisation gives each slot its object's
first-frame box only through the initial slot vector (an MLP of the box's coordinates); on that frame the corrector
still decides from the inputs' features which pixels a slot takes. Where the masks follow the attention
(``model.attention_masks``) the boxes then stop binding their objects (docs/results.md, Video, session 21): slots
start alike on an object and share it. This prior uses what the conditioning already says: on the first frame of a
clip that starts from the initial slots, every attention logit of an object's slot at an input outside its box is
lowered by ``beta``; the background slot (prepended, SAVi's) is not biased, and the slot of an absent object (a
zero box, SAVi's NOTRACK_BOX) is lowered everywhere, so it holds nothing on that frame. Later frames are not biased.
"""

from __future__ import annotations

import torch
from torch import Tensor


def inside_boxes(boxes: Tensor, grid: tuple[int, int]) -> Tensor:
    """boxes [B, M, 4] (ymin, xmin, ymax, xmax in [0, 1]) -> [B, M, h*w] bool: the inputs of the (h, w) grid whose
    centres lie in each box (a zero box holds none)."""
    h, w = grid
    ys = (torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5) / h  # [h]
    xs = (torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5) / w  # [w]
    b = boxes.float()
    in_y = (ys >= b[..., 0:1]) & (ys <= b[..., 2:3])  # [B, M, h]
    in_x = (xs >= b[..., 1:2]) & (xs <= b[..., 3:4])  # [B, M, w]
    inside = in_y[..., :, None] & in_x[..., None, :]  # [B, M, h, w]
    return inside.flatten(2)  # [B, M, h*w]


def box_logit_bias(boxes: Tensor, grid: tuple[int, int], background: bool, beta: float) -> Tensor:
    """The additive bias [B, K, h*w] (fp32) of the first frame's attention logits: 0 inside a slot's box, -beta
    outside; K = M + 1 with a background slot first (``background``; never biased), else M. ``boxes`` [B, M, 4]
    or per frame [B, T, M, 4] (frame 0's are used, as the initialisation uses them)."""
    if boxes.dim() == 4:
        boxes = boxes[:, 0]  # [B, M, 4]
    bias = (~inside_boxes(boxes, grid)).float() * -beta  # [B, M, N]
    if background:
        bias = torch.cat([bias.new_zeros(bias.shape[0], 1, bias.shape[-1]), bias], dim=1)  # [B, K, N]
    return bias


__all__ = ["box_logit_bias", "inside_boxes"]
