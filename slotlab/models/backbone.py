"""The image-to-slots part that the object-discovery and set-prediction models share (paper Section 2.1 and
appendix B): CNN encoder + soft position embedding + LayerNorm/MLP (:class:`SlotInputEncoder`), then Slot
Attention (or, with ``slot_attention["frame"]`` not "absolute", Invariant Slot Attention). Each model builds it
with :func:`slot_backbone` and adds its own decoder or property head.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from slotlab.modules.encoders import SlotInputEncoder
from slotlab.modules.invariant_slot_attention import InvariantSlotAttention
from slotlab.modules.slot_attention import SlotAttention


def slot_backbone(
    resolution: tuple[int, int],
    encoder_channels: Sequence[int],
    encoder_strides: Sequence[int],
    num_slots: int,
    iters: int,
    slot_dim: int,
    mlp_hidden: int,
    position_embedding: bool,
    layer_norm_eps: float,
    slot_attention: dict[str, Any] | None,
    encoder_fourier_bands: int = 0,
) -> tuple[SlotInputEncoder, SlotAttention]:
    """The encoder (image [B, 3, H, W] -> inputs [B, N, slot_dim]) and the Slot Attention module of a model, built
    in this order (the order of their weights' initialisation); arguments: those of the models' constructors."""
    encoder = SlotInputEncoder(
        resolution, tuple(encoder_channels), tuple(encoder_strides), slot_dim, position_embedding, layer_norm_eps,
        encoder_fourier_bands,
    )  # fmt: skip
    options = dict(slot_attention or {})
    frame = options.pop("frame", "absolute")  # object discovery's key: Invariant Slot Attention's frames
    module = SlotAttention
    if frame != "absolute":
        module = partial(InvariantSlotAttention, frame=frame)
    sa = module(
        num_slots, dim=slot_dim, iters=iters, hidden_dim=mlp_hidden, layer_norm_eps=layer_norm_eps, **options
    )  # fmt: skip
    return encoder, sa
