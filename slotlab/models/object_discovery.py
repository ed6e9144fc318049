"""The unsupervised object-discovery autoencoder (paper Section 2.2, 4.1).

CNN encoder + soft position embedding + LayerNorm/MLP -> Slot Attention -> spatial broadcast decoder
(RGB + alpha per slot, softmax over slots, mixture). Trained with the MSE of the reconstruction.
Two sizes, as in the paper / reference code: full-resolution broadcast with stride-1 convolutions for small
images (Tetrominoes 35x35, Multi-dSprites 64x64) and 8x8 broadcast + stride-2 transposed convolutions for
128x128 (CLEVR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.checks import check_image
from slotlab.modules.decoders import build_decoder
from slotlab.modules.encoders import SlotInputEncoder
from slotlab.modules.slot_attention import SlotAttention
from slotlab.modules.slot_frame import centred_grid, slot_frames


@dataclass
class ObjectDiscoveryOutput:
    recon: Tensor  # [B, 3, H, W]
    recons: Tensor  # [B, K, 3, H, W] per-slot RGB
    masks: Tensor  # [B, K, 1, H, W] alpha masks, softmax over slots
    slots: Tensor  # [B, K, D]
    attn: Tensor  # [B, T, K, N] Slot Attention maps of every iteration (N = encoder grid)


class ObjectDiscoveryModel(nn.Module):
    """Slot Attention autoencoder.

    Args:
        resolution: image (H, W).
        num_slots: K at training time.
        iters: T at training time.
        slot_dim: D (64).
        mlp_hidden: hidden size of Slot Attention's residual MLP (128).
        encoder_channels: channels of the 4 encoder convolutions (paper: 64 for CLEVR, 32 for the small sets).
        decoder: "full_resolution" or "clevr" (8x8 broadcast + stride-2 transposed convolutions).
        decoder_channels: channels of the decoder's hidden layers.
        position_embedding: add the soft position embedding to the encoder features (appendix B, Fig. 8).
        factorize_decoder: exact factorisation of the decoder's first layer (speed only; same function).
        decoder_frame: "absolute" (paper) or "translation" / "translation_scale": the decoder's broadcast grid
            relative to each slot's attention centre (and spread), as in Invariant Slot Attention (not in the
            paper; :mod:`slotlab.modules.slot_frame`).
        slot_attention: extra keyword options of :class:`SlotAttention` (the ablations of appendix B).
        layer_norm_eps: epsilon of every LayerNorm (encoder and Slot Attention); 1e-3 as the reference code
            (Keras' default).
    """

    def __init__(
        self,
        resolution: Sequence[int] = (35, 35),
        num_slots: int = 4,
        iters: int = 3,
        slot_dim: int = 64,
        mlp_hidden: int = 128,
        encoder_channels: Sequence[int] = (32, 32, 32, 32),
        decoder: str = "full_resolution",
        decoder_channels: int = 32,
        position_embedding: bool = True,
        factorize_decoder: bool = True,
        slot_attention: dict[str, Any] | None = None,
        layer_norm_eps: float = 1e-3,
        decoder_frame: str = "absolute",
    ) -> None:
        super().__init__()
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.encoder = SlotInputEncoder(
            self.resolution,
            encoder_channels,
            (1,) * len(encoder_channels),
            slot_dim,
            position_embedding,
            layer_norm_eps,
        )
        self.slot_attention = SlotAttention(
            num_slots,
            dim=slot_dim,
            iters=iters,
            hidden_dim=mlp_hidden,
            layer_norm_eps=layer_norm_eps,
            **(slot_attention or {}),
        )
        self.decoder = build_decoder(
            self.resolution, slot_dim, decoder, decoder_channels, factorize_decoder, decoder_frame
        )
        self.decoder_frame = decoder_frame
        if decoder_frame != "absolute":  # the encoder keeps full resolution: one input per pixel
            self.register_buffer("input_grid", centred_grid(*self.resolution), persistent=False)

    def forward(
        self,
        image: Tensor,
        num_slots: int | None = None,
        iters: int | None = None,
        slots: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> ObjectDiscoveryOutput:
        """image: [B, 3, H, W] scaled to [-1, 1]; optional initial ``slots`` or init ``noise`` [B, K, D]."""
        image = check_image(image, self.resolution, self.slot_attention.slots_mu.dtype)
        inputs = self.encoder(image)  # [B, N, D]
        sa = self.slot_attention(inputs, num_slots=num_slots, iters=iters, slots=slots, noise=noise)
        if self.decoder_frame == "absolute":
            dec = self.decoder(sa.slots)
        else:
            positions, scales = slot_frames(sa.attn[:, -1], self.input_grid)  # [B, K, 2] each
            dec = self.decoder(sa.slots, positions, scales)
        return ObjectDiscoveryOutput(dec.recon, dec.recons, dec.masks, sa.slots, sa.attn)

    @staticmethod
    def loss(out: ObjectDiscoveryOutput, image: Tensor) -> Tensor:
        """Mean squared reconstruction error (the paper's training objective)."""
        return F.mse_loss(out.recon, image.float())
