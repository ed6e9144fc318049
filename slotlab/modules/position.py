"""Soft position embedding (paper Section 2.2 and the reference code).

A learned linear map (with bias) of the 4-channel grid ``[y, x, 1 - y, 1 - x]`` (linspace 0..1 per axis)
to the feature size, added to a feature map. Used after the CNN encoder and inside the broadcast decoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def build_grid(height: int, width: int) -> Tensor:
    """The reference code's position grid: [H, W, 4] with channels (y, x, 1 - y, 1 - x) in [0, 1]."""
    ys = torch.linspace(0.0, 1.0, height)
    xs = torch.linspace(0.0, 1.0, width)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([y, x, 1.0 - y, 1.0 - x], dim=-1)  # [H, W, 4]


class SoftPositionEmbed(nn.Module):
    """Adds ``Linear(4 -> C)(grid)`` to a channels-first feature map [B, C, H, W]."""

    def __init__(self, channels: int, resolution: tuple[int, int]) -> None:
        super().__init__()
        self.resolution = tuple(resolution)
        self.dense = nn.Linear(4, channels)
        self.register_buffer("grid", build_grid(*self.resolution), persistent=False)

    def embedding(self) -> Tensor:
        """The position embedding alone: [1, C, H, W]."""
        return self.dense(self.grid).permute(2, 0, 1).unsqueeze(0)  # [1, C, H, W]

    def add_to_tokens(self, tokens: Tensor, resolution: tuple[int, int]) -> Tensor:
        """The same addition for the flattened map ``tokens`` [B, H*W, C] of a [B, C, H, W] map of ``resolution``.

        Adding in the [B, N, C] layout gives the same values as :meth:`forward` followed by flatten/transpose,
        but the embedding's gradient is then a sum over B of a contiguous tensor (on a channels_last
        [B, C, H, W] map it is a strided reduction, ~5x slower at 128x128).
        """
        if tuple(resolution) != self.resolution:
            raise ValueError(f"feature map is {tuple(resolution)}, position embedding expects {self.resolution}")
        emb = self.dense(self.grid).flatten(0, 1)  # [H*W, C]
        return tokens + emb.to(tokens.dtype)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.resolution:
            raise ValueError(f"feature map is {tuple(x.shape[-2:])}, position embedding expects {self.resolution}")
        return x + self.embedding().to(x.dtype)
