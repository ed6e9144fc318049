"""The Slot MLP baseline of the paper (Section 4, "Baselines"; Table 1 and Figure 5).

"This model replaces Slot Attention with an MLP that maps from the CNN feature maps (resized and flattened) to
the (now ordered) slot representation." The paper gives no sizes; our choices (stated, configurable):

* the CNN feature map [B, C, h, w] (the same CNN as the Slot Attention model of the task, without the soft
  position embedding: the flattening keeps the spatial layout, so position is already known to the MLP) is
  resized with adaptive average pooling to ``grid`` = 8x8 (so both 32x32 set-prediction grids and 35x35 /
  64x64 / 128x128 object-discovery maps work),
* flattened (C * 64 features), then MLP: Linear(hidden) ReLU Linear(hidden) ReLU Linear(K * D), hidden = 512,
* reshaped to K ordered slots [B, K, D].

Unlike Slot Attention the output is NOT permutation-equivariant/-invariant: slot k is always the k-th chunk of
the last layer, and K is fixed by the weights (no change of K at test time, no iterations).

Two models use it: :class:`SetPredictionSlotMLP` (same per-slot property head as
:class:`slotlab.models.set_prediction.SetPredictionModel`) and :class:`ObjectDiscoverySlotMLP` (same spatial
broadcast decoder and MSE loss as :class:`slotlab.models.object_discovery.ObjectDiscoveryModel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from slotlab.checks import check_image
from slotlab.metrics.average_precision import FEATURE_DIM
from slotlab.models.object_discovery import ObjectDiscoveryModel, ObjectDiscoveryOutput
from slotlab.models.set_prediction import PropertyHead, SetPredictionModel, SetPredictionOutput
from slotlab.modules.decoders import build_decoder
from slotlab.modules.encoders import CNNEncoder


class SlotMLP(nn.Module):
    """CNN features [B, C, H, W] -> adaptive average pool to ``grid`` -> flatten -> MLP -> ordered slots [B, K, D].

    Args:
        feature_channels: C of the feature map.
        grid: (gh, gw) size the feature map is resized to (8x8 by default).
        num_slots: K (fixed by the weights).
        slot_dim: D.
        hidden: width of the two hidden layers of the MLP.
    """

    def __init__(
        self,
        feature_channels: int,
        grid: int | Sequence[int] = (8, 8),
        num_slots: int = 10,
        slot_dim: int = 64,
        hidden: int = 512,
    ) -> None:
        super().__init__()
        self.grid = (int(grid), int(grid)) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))
        self.num_slots = num_slots
        self.slot_dim = slot_dim
        flat = feature_channels * self.grid[0] * self.grid[1]
        self.mlp = nn.Sequential(
            nn.Linear(flat, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_slots * slot_dim),
        )

    def forward(self, features: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(features, self.grid)  # [B, C, gh, gw]
        x = self.mlp(x.flatten(1))  # [B, K * D]
        return x.view(x.shape[0], self.num_slots, self.slot_dim)  # [B, K, D]


class SlotMLPEncoder(nn.Module):
    """CNN + :class:`SlotMLP`; exposes ``feature_resolution`` like :class:`SlotInputEncoder`."""

    def __init__(
        self,
        resolution: tuple[int, int],
        channels: Sequence[int],
        strides: Sequence[int],
        num_slots: int,
        slot_dim: int,
        grid: int | Sequence[int] = (8, 8),
        hidden: int = 512,
    ) -> None:
        super().__init__()
        self.cnn = CNNEncoder(3, tuple(channels), tuple(strides))
        self.feature_resolution = self.cnn.output_resolution(tuple(resolution))
        self.slot_mlp = SlotMLP(self.cnn.out_channels, grid, num_slots, slot_dim, hidden)

    def forward(self, image: Tensor) -> Tensor:
        return self.slot_mlp(self.cnn(image))  # [B, K, D]


def _check_fixed(num_slots: int | None, iters: int | None, k: int) -> None:
    if num_slots is not None and num_slots != k:
        raise ValueError(f"the Slot MLP baseline has a fixed number of slots ({k}); cannot use num_slots={num_slots}")
    if iters is not None:
        raise ValueError("the Slot MLP baseline has no attention iterations; do not pass iters")


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
        _check_fixed(num_slots, iters, self.num_slots)
        slots = self.encoder(image)  # [B, K, D]
        pred = self.head(slots)  # [B, K, 19]
        n = self.encoder.feature_resolution[0] * self.encoder.feature_resolution[1]
        attn = slots.new_zeros(slots.shape[0], 0, self.num_slots, n)  # [B, 0, K, N]
        return SetPredictionOutput(pred=pred, slots=slots, attn=attn)

    loss = staticmethod(SetPredictionModel.loss)  # Hungarian-matched Huber loss, as for Slot Attention


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
        _check_fixed(num_slots, iters, self.num_slots)
        slots = self.encoder(image)  # [B, K, D]
        dec = self.decoder(slots)
        n = self.encoder.feature_resolution[0] * self.encoder.feature_resolution[1]
        attn = slots.new_zeros(slots.shape[0], 0, self.num_slots, n)  # [B, 0, K, N]: no attention maps
        return ObjectDiscoveryOutput(dec.recon, dec.recons, dec.masks, slots, attn)

    loss = staticmethod(ObjectDiscoveryModel.loss)


def build_object_discovery_slot_mlp(model_cfg: dict[str, Any], image_size: tuple[int, int]) -> ObjectDiscoverySlotMLP:
    """The object-discovery Slot MLP from a validated ``model`` config section (``model.kind: slot_mlp``).

    Reads the keys of ``slotlab.tasks.object_discovery.build_model`` that apply to it, plus the optional section
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
