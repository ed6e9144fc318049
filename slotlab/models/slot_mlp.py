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

Each task builds its baseline from :class:`SlotMLPEncoder` in its own model module (``slotlab/tasks/<task>/``):
the task's decoder or head on these ordered slots, K and T fixed (:func:`check_fixed`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

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


def check_fixed(num_slots: int | None, iters: int | None, k: int) -> None:
    if num_slots is not None and num_slots != k:
        raise ValueError(f"the Slot MLP baseline has a fixed number of slots ({k}); cannot use num_slots={num_slots}")
    if iters is not None:
        raise ValueError("the Slot MLP baseline has no attention iterations; do not pass iters")
