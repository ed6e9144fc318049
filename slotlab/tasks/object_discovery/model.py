"""The unsupervised object-discovery autoencoder (paper Section 2.2, 4.1).

CNN encoder + soft position embedding + LayerNorm/MLP -> Slot Attention -> spatial broadcast decoder
(RGB + alpha per slot, softmax over slots, mixture). Trained with the MSE of the reconstruction.
Two sizes, as in the paper / reference code: full-resolution broadcast with stride-1 convolutions for small
images (Tetrominoes 35x35, Multi-dSprites 64x64) and 8x8 broadcast + stride-2 transposed convolutions for
128x128 (CLEVR). Its Slot MLP baseline (:class:`ObjectDiscoverySlotMLP`, paper Table 1) has the same decoder on
the ordered slots of :class:`slotlab.models.slot_mlp.SlotMLPEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.checks import check_image, none_or_positive
from slotlab.models.backbone import slot_backbone
from slotlab.models.slot_mlp import SlotMLPEncoder, check_fixed
from slotlab.modules.attention_masks import mix_with_attention
from slotlab.modules.decoders import build_decoder
from slotlab.modules.mask_entropy import mask_entropy
from slotlab.modules.slot_frame import centred_grid, slot_frames
from slotlab.modules.slot_keep import SlotKeepGate, keep_masks
from slotlab.modules.slot_mass import slot_mass_price
from slotlab.modules.slot_merge import merge_duplicate_slots
from slotlab.modules.slot_repulsion import near_copy_price


@dataclass
class ObjectDiscoveryOutput:
    recon: Tensor  # [B, 3, H, W]
    recons: Tensor  # [B, K, 3, H, W] per-slot RGB
    masks: Tensor  # [B, K, 1, H, W] alpha masks, softmax over slots
    slots: Tensor  # [B, K, D]
    attn: Tensor  # [B, T, K, N] Slot Attention maps of every iteration (N = encoder grid)
    keep: Tensor | None = None  # [B, K] keep decisions (model.slot_keep; None: every slot is kept, the paper)
    keep_weight: float = 0.0  # the loss's price of a kept slot
    entropy_weight: float = 0.0  # the loss's weight of the masks' entropy (model.mask_entropy; 0: the paper)
    mass_weight: float = 0.0  # the loss's weight of the slots' share price (model.slot_mass_penalty; 0: the paper)
    repulsion_weight: float = 0.0  # the loss's weight of the near-copy price (model.slot_repulsion; 0: the paper)


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
        encoder_fourier_bands: Fourier features of the encoder's position grid (0: the paper's linear grid, whose
            dot product with a query can only favour one side of the image; not in the paper;
            :mod:`slotlab.modules.position`).
        factorize_decoder: exact factorisation of the decoder's first layer (speed only; same function).
        decoder_frame: "absolute" (paper) or "translation" / "translation_scale": the decoder's broadcast grid
            relative to each slot's attention centre (and spread), as in Invariant Slot Attention (not in the
            paper; :mod:`slotlab.modules.slot_frame`).
        decoder_fourier_bands: Fourier features of the decoder's absolute grid (0: the paper's linear grid; not in
            the paper; :mod:`slotlab.modules.position`).
        slot_attention: extra keyword options of :class:`SlotAttention` (the ablations of appendix B).
        layer_norm_eps: epsilon of every LayerNorm (encoder and Slot Attention); 1e-3 as the reference code
            (Keras' default).
        merge_slots: None (the paper) or a cosine threshold: in eval mode, near-copy slots are merged into one
            before the masks are read (not in the paper; :mod:`slotlab.modules.slot_merge`). Training is unchanged.
        eval_iters: None (T = ``iters`` everywhere, the paper's Table 1) or T in eval mode when a call names none
            (the paper's Figure 2, right: more iterations at test time than in training). Training is unchanged.
        eval_spatial_prior: None (the paper) or a weight: in eval mode, from the second iteration on, each slot's
            attention logits get ``weight`` x the log-density of a Gaussian fitted to its previous attention (not in
            the paper; :mod:`slotlab.modules.spatial_prior`). Training is unchanged.
        train_spatial_prior: None (the paper) or a weight: the same prior in training mode (evaluation keeps
            ``eval_spatial_prior``), so that the model learns under the locality it is evaluated with (not in the
            paper).
        slot_keep: None (the paper: every slot is decoded) or the loss's price of a kept slot: AdaSlot's keep / drop
            decision per slot, the dropped slots' masks removed (not in the paper; :mod:`slotlab.modules.slot_keep`).
        mask_entropy: None (the paper's loss) or the weight of the decoder masks' per-pixel entropy over the slots
            added to the loss (not in the paper; :mod:`slotlab.modules.mask_entropy`).
        slot_mass_penalty: None (the paper's loss) or the weight of a concave price on each slot's share of the
            image, the sum over the slots of sqrt(share), added to the loss: a split object costs more than a whole
            one (not in the paper; :mod:`slotlab.modules.slot_mass`).
        slot_repulsion: None (the paper's loss) or the weight of a price on near-copy slots (pairs whose cosine
            similarity exceeds 0.5 pay the excess), added to the loss (not in the paper;
            :mod:`slotlab.modules.slot_repulsion`).
        attention_masks: None (the paper) or w > 0: the masks are the softmax over the slots of the decoder's alpha
            logits + w x log of the last iteration's attention, so they follow the inputs' features (not in the
            paper; :mod:`slotlab.modules.attention_masks`).
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
        encoder_fourier_bands: int = 0,
        factorize_decoder: bool = True,
        slot_attention: dict[str, Any] | None = None,
        layer_norm_eps: float = 1e-3,
        decoder_frame: str = "absolute",
        decoder_fourier_bands: int = 0,
        merge_slots: float | None = None,
        eval_iters: int | None = None,
        eval_spatial_prior: float | None = None,
        train_spatial_prior: float | None = None,
        slot_keep: float | None = None,
        mask_entropy: float | None = None,
        slot_mass_penalty: float | None = None,
        slot_repulsion: float | None = None,
        attention_masks: float | None = None,
    ) -> None:
        super().__init__()
        self.attention_masks = none_or_positive("attention_masks", attention_masks)
        self.merge_slots = merge_slots
        self.mask_entropy = mask_entropy
        self.slot_mass_penalty = slot_mass_penalty
        self.slot_repulsion = slot_repulsion
        self.slot_keep = slot_keep
        self.keep_gate = SlotKeepGate(slot_dim) if slot_keep is not None else None
        self.eval_iters = eval_iters
        self.eval_spatial_prior = none_or_positive("eval_spatial_prior", eval_spatial_prior)
        self.train_spatial_prior = none_or_positive("train_spatial_prior", train_spatial_prior)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.encoder, self.slot_attention = slot_backbone(
            self.resolution, encoder_channels, (1,) * len(encoder_channels), num_slots, iters, slot_dim, mlp_hidden,
            position_embedding, layer_norm_eps, slot_attention, encoder_fourier_bands,
        )  # fmt: skip
        self.decoder = build_decoder(
            self.resolution, slot_dim, decoder, decoder_channels, factorize_decoder, decoder_frame,
            decoder_fourier_bands,
        )  # fmt: skip
        self.decoder_frame = decoder_frame
        # The encoder keeps full resolution: one input per pixel, at these (y, x) positions [N, 2].
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
        prior = self.train_spatial_prior
        if not self.training:
            iters = self.eval_iters if iters is None else iters  # None: the module's own T
            prior = self.eval_spatial_prior
        sa = self.slot_attention(
            inputs, num_slots=num_slots, iters=iters, slots=slots, noise=noise, spatial_prior=prior,
            positions=self.input_grid,  # [N, 2]: the spatial prior's and Invariant Slot Attention's grid
        )  # fmt: skip
        if self.decoder_frame == "absolute":
            dec = self.decoder(sa.slots)
        else:
            positions, scales = slot_frames(sa.attn[:, -1], self.input_grid)  # [B, K, 2] each
            dec = self.decoder(sa.slots, positions, scales)
        masks, recons, recon, keep = dec.masks, dec.recons, dec.recon, None
        if self.attention_masks is not None:  # masks that follow the inputs (not in the paper)
            recon, mixed = mix_with_attention(
                dec.alpha[:, :, 0], recons, sa.attn[:, -1], self.resolution, self.attention_masks
            )  # [B, 3, H, W], [B, K, H, W]
            masks = mixed.unsqueeze(2)  # [B, K, 1, H, W]
        if self.keep_gate is not None:
            keep = self.keep_gate.decide(sa.slots)  # [B, K]
            masks = keep_masks(masks, keep)  # [B, K, 1, H, W], renormalised over the kept slots
            recon = (masks * recons).sum(1)  # [B, 3, H, W]
        if self.merge_slots is not None and not self.training:
            masks, recons = merge_duplicate_slots(sa.slots, masks, recons, self.merge_slots)
        return ObjectDiscoveryOutput(
            recon, recons, masks, sa.slots, sa.attn, keep, self.slot_keep or 0.0, self.mask_entropy or 0.0,
            self.slot_mass_penalty or 0.0, self.slot_repulsion or 0.0,
        )  # fmt: skip

    @staticmethod
    def loss(out: ObjectDiscoveryOutput, image: Tensor) -> Tensor:
        """Mean squared reconstruction error (the paper's training objective), plus the price of the kept slots
        where ``slot_keep`` is set (AdaSlot's sparsity penalty: weight x the mean keep decision) and the masks'
        entropy where ``mask_entropy`` is set (weight x the mean per-pixel entropy over the slots) and the slots'
        share price where ``slot_mass_penalty`` is set (weight x the sum over slots of sqrt(share), batch mean) and
        the near-copy price where ``slot_repulsion`` is set (:func:`near_copy_price` of the slots, weighted)."""
        loss = F.mse_loss(out.recon, image.float())
        if out.keep is not None:
            loss = loss + out.keep_weight * out.keep.float().mean()
        if out.entropy_weight:
            loss = loss + out.entropy_weight * mask_entropy(out.masks)
        if out.mass_weight:
            loss = loss + out.mass_weight * slot_mass_price(out.masks)
        if out.repulsion_weight:
            loss = loss + out.repulsion_weight * near_copy_price(out.slots)
        return loss


class ObjectDiscoverySlotMLP(nn.Module):
    """Slot MLP baseline for object discovery (paper Table 1): CNN -> SlotMLP -> spatial broadcast decoder.

    The constructor arguments of :class:`ObjectDiscoveryModel` that apply to it (no Slot Attention options), plus
    ``slot_mlp_grid`` and ``slot_mlp_hidden``. ``forward`` returns an :class:`ObjectDiscoveryOutput` whose
    ``attn`` is an empty [B, 0, K, N] tensor.
    """

    def __init__(
        self,
        resolution: Sequence[int] = (35, 35),
        num_slots: int = 4,
        slot_dim: int = 64,
        encoder_channels: Sequence[int] = (32, 32, 32, 32),
        decoder: str = "full_resolution",
        decoder_channels: int = 32,
        factorize_decoder: bool = True,
        slot_mlp_grid: int | Sequence[int] = (8, 8),
        slot_mlp_hidden: int = 512,
    ) -> None:
        super().__init__()
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.encoder = SlotMLPEncoder(
            self.resolution,
            encoder_channels,
            (1,) * len(encoder_channels),
            num_slots,
            slot_dim,
            slot_mlp_grid,
            slot_mlp_hidden,
        )
        self.decoder = build_decoder(self.resolution, slot_dim, decoder, decoder_channels, factorize_decoder)

    @property
    def num_slots(self) -> int:
        return self.encoder.slot_mlp.num_slots

    def forward(
        self, image: Tensor, num_slots: int | None = None, iters: int | None = None, noise: Tensor | None = None
    ) -> ObjectDiscoveryOutput:
        """image: [B, 3, H, W] scaled to [-1, 1]; ``noise`` is accepted and ignored (no random slot init)."""
        image = check_image(image, self.resolution, next(self.parameters()).dtype)
        check_fixed(num_slots, iters, self.num_slots)
        slots = self.encoder(image)  # [B, K, D]
        dec = self.decoder(slots)
        n = self.encoder.feature_resolution[0] * self.encoder.feature_resolution[1]
        attn = slots.new_zeros(slots.shape[0], 0, self.num_slots, n)  # [B, 0, K, N]: no attention maps
        return ObjectDiscoveryOutput(dec.recon, dec.recons, dec.masks, slots, attn)

    loss = staticmethod(ObjectDiscoveryModel.loss)


def build_object_discovery_slot_mlp(model_cfg: dict[str, Any], image_size: tuple[int, int]) -> ObjectDiscoverySlotMLP:
    """The object-discovery Slot MLP from a validated ``model`` config section (``model.kind: slot_mlp``).

    Reads the keys of the task's ``build_model`` that apply to it, plus the optional section
    ``model.slot_mlp: {grid: 8, hidden: 512}``.
    """
    sm = model_cfg.get("slot_mlp") or {}
    return ObjectDiscoverySlotMLP(
        resolution=image_size,
        num_slots=model_cfg["num_slots"],
        slot_dim=model_cfg["slot_dim"],
        encoder_channels=model_cfg["encoder_channels"],
        decoder=model_cfg["decoder"],
        decoder_channels=model_cfg["decoder_channels"],
        factorize_decoder=model_cfg["factorize_decoder"],
        slot_mlp_grid=sm.get("grid", 8),
        slot_mlp_hidden=sm.get("hidden", 512),
    )
