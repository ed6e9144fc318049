"""A price on near-copy slots: a training penalty against duplicates (not in the paper).

Short CPU runs on Multi-dSprites and CLEVR6 leave objects split over two or three slots whose vectors are near
copies of each other (docs/results.md, "where FG-ARI goes"): the decoder draws near-copies alike, so they share the
object's pixels and the argmax FG-ARI reads flips between them. Merging them at inference
(:mod:`slotlab.modules.slot_merge`) recovers part of the loss after the fact; this price acts during training: for
each pair of slots of an image, the amount by which their cosine similarity exceeds ``THRESHOLD``, summed over the
pairs and averaged over the images. The slots are centred on the image's mean slot first: trained slots share a
large common part (on the step-4,000 Multi-dSprites preset model the median pair's cosine is 0.50 uncentred), and
centred the pairs fall in two groups (median -0.31; 22 % above 0.5, the near-copies). Pairs below the threshold
(distinct objects) cost nothing, so its gradient moves only near-copies apart. slotlab's option
``model.slot_repulsion`` (null: the paper's loss) is its weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

THRESHOLD = 0.5  # cosine similarity (slots centred on their mean) above which two slots pay


def near_copy_price(slots: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """slots [B, K, D] -> mean over B of the sum over pairs k < l of max(0, cos(s_k, s_l) - threshold), each
    image's slots centred on their mean first; fp32."""
    f = slots.float()
    f = F.normalize(f - f.mean(1, keepdim=True), dim=-1)  # [B, K, D]
    cos = f @ f.transpose(1, 2)  # [B, K, K]
    k = slots.shape[1]
    upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=slots.device), diagonal=1)  # pairs k < l
    return (cos - threshold).clamp_min(0)[:, upper].sum(-1).mean()
