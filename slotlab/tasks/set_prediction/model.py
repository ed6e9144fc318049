"""The supervised set-prediction (object property prediction) model (paper Section 2.3, 4.2; Figure 1c).

CNN encoder (Conv 5x5 with strides (1, 2, 2, 1): 128x128 -> 32x32 grid) + soft position embedding + flatten +
LayerNorm + MLP -> Slot Attention (K = 10, D = 64, hidden 128, T = 3) -> a per-slot head
Linear(64) ReLU Linear(19) Sigmoid that predicts the 19-dim CLEVR property vector of one object (coordinates,
size, material, shape, colour one-hots and a presence confidence). Trained with the Hungarian-matched Huber
loss (:func:`slotlab.losses.hungarian_huber_loss`), evaluated with the object-level AP
(:mod:`slotlab.metrics.average_precision`). Its Slot MLP baseline (:class:`SetPredictionSlotMLP`, paper Figure 5)
has the same head on the ordered slots of :class:`slotlab.models.slot_mlp.SlotMLPEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from slotlab.checks import check_image
from slotlab.losses import hungarian_huber_loss
from slotlab.metrics.average_precision import FEATURE_DIM
from slotlab.models.backbone import slot_backbone
from slotlab.models.slot_mlp import SlotMLPEncoder, check_fixed


@dataclass
class SetPredictionOutput:
    pred: Tensor  # [B, K, 19] per-slot property predictions in [0, 1] (dim 18: presence confidence)
    slots: Tensor  # [B, K, D]
    attn: Tensor  # [B, T, K, N] Slot Attention maps of every iteration (T = 0 for the Slot MLP baseline)


class PropertyHead(nn.Module):
    """Per-slot classifier of the reference code: Linear(hidden) ReLU Linear(19) Sigmoid, shared across slots."""

    def __init__(self, slot_dim: int = 64, hidden: int = 64, output_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(slot_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, output_dim), nn.Sigmoid()
        )

    def forward(self, slots: Tensor) -> Tensor:
        return self.net(slots)  # [B, K, 19]


class SetPredictionModel(nn.Module):
    """Slot Attention property-prediction model.

    Args:
        resolution: image (H, W) (128x128 in the paper).
        num_slots: K at training time (10 for CLEVR10, 6 for CLEVR6); can be changed per call.
        iters: T at training time (3); can be changed per call.
        slot_dim: D (64).
        mlp_hidden: hidden size of Slot Attention's residual MLP (128).
        encoder_channels: channels of the encoder convolutions (64, 64, 64, 64).
        encoder_strides: their strides ((1, 2, 2, 1): 128x128 -> 32x32).
        head_hidden: hidden size of the per-slot property head (64).
        output_dim: size of the property vector (19 for CLEVR).
        position_embedding: add the soft position embedding to the encoder features (appendix B, Fig. 8).
        slot_attention: extra keyword options of :class:`SlotAttention` (the ablations of appendix B).
        layer_norm_eps: epsilon of every LayerNorm (encoder and Slot Attention); 1e-3 as the reference code
            (Keras' default).
        eval_iters: None (T = ``iters`` everywhere, the paper's protocol) or T in eval mode when a call names none
            (more iterations at test time than in training, as the paper's Figure 2, right). Training is unchanged.
    """

    def __init__(
        self,
        resolution: Sequence[int] = (128, 128),
        num_slots: int = 10,
        iters: int = 3,
        eval_iters: int | None = None,
        slot_dim: int = 64,
        mlp_hidden: int = 128,
        encoder_channels: Sequence[int] = (64, 64, 64, 64),
        encoder_strides: Sequence[int] = (1, 2, 2, 1),
        head_hidden: int = 64,
        output_dim: int = FEATURE_DIM,
        position_embedding: bool = True,
        slot_attention: dict[str, Any] | None = None,
        layer_norm_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.eval_iters = eval_iters
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.encoder, self.slot_attention = slot_backbone(
            self.resolution, encoder_channels, encoder_strides, num_slots, iters, slot_dim, mlp_hidden,
            position_embedding, layer_norm_eps, slot_attention,
        )  # fmt: skip
        self.head = PropertyHead(slot_dim, head_hidden, output_dim)

    @property
    def num_slots(self) -> int:
        return self.slot_attention.num_slots

    def forward(
        self, image: Tensor, num_slots: int | None = None, iters: int | None = None, noise: Tensor | None = None
    ) -> SetPredictionOutput:
        """image: [B, 3, H, W] scaled to [-1, 1]; noise: optional N(0, 1) slot-init noise [B, K, D]."""
        image = check_image(image, self.resolution, self.slot_attention.slots_mu.dtype)
        inputs = self.encoder(image)  # [B, N, D]
        if iters is None and not self.training:
            iters = self.eval_iters  # None: the module's own T
        sa = self.slot_attention(inputs, num_slots=num_slots, iters=iters, noise=noise)
        pred = self.head(sa.slots)  # [B, K, 19]
        return SetPredictionOutput(pred=pred, slots=sa.slots, attn=sa.attn)

    @staticmethod
    def loss(out: SetPredictionOutput, target: Tensor) -> Tensor:
        """Hungarian-matched Huber loss (paper Section 2.3); target: zero-padded [B, K, 19]."""
        return hungarian_huber_loss(out.pred.float(), target.float())


class SetPredictionSlotMLP(nn.Module):
    """Slot MLP baseline for property prediction: CNN (strides (1, 2, 2, 1)) -> SlotMLP -> per-slot head."""

    def __init__(
        self,
        resolution: Sequence[int] = (128, 128),
        num_slots: int = 10,
        slot_dim: int = 64,
        encoder_channels: Sequence[int] = (64, 64, 64, 64),
        encoder_strides: Sequence[int] = (1, 2, 2, 1),
        head_hidden: int = 64,
        output_dim: int = FEATURE_DIM,
        grid: int | Sequence[int] = (8, 8),
        hidden: int = 512,
    ) -> None:
        super().__init__()
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.encoder = SlotMLPEncoder(
            self.resolution, encoder_channels, encoder_strides, num_slots, slot_dim, grid, hidden
        )
        self.head = PropertyHead(slot_dim, head_hidden, output_dim)

    @property
    def num_slots(self) -> int:
        return self.encoder.slot_mlp.num_slots

    def forward(
        self, image: Tensor, num_slots: int | None = None, iters: int | None = None, noise: Tensor | None = None
    ) -> SetPredictionOutput:
        """image: [B, 3, H, W] in [-1, 1]. ``attn`` is an empty [B, 0, K, N] tensor (no attention); ``noise``
        (slot-init noise of Slot Attention models) is accepted and ignored: the Slot MLP is deterministic."""
        image = check_image(image, self.resolution, next(self.parameters()).dtype)
        check_fixed(num_slots, iters, self.num_slots)
        slots = self.encoder(image)  # [B, K, D]
        pred = self.head(slots)  # [B, K, 19]
        n = self.encoder.feature_resolution[0] * self.encoder.feature_resolution[1]
        attn = slots.new_zeros(slots.shape[0], 0, self.num_slots, n)  # [B, 0, K, N]
        return SetPredictionOutput(pred=pred, slots=slots, attn=attn)

    loss = staticmethod(SetPredictionModel.loss)  # Hungarian-matched Huber loss, as for Slot Attention
