"""Soft position embedding (paper Section 2.2 and the reference code).

A learned linear map (with bias) of the 4-channel grid ``[y, x, 1 - y, 1 - x]`` (linspace 0..1 per axis)
to the feature size, added to a feature map. Used after the CNN encoder and inside the broadcast decoder.

Option, not in the paper (``model.decoder_fourier_bands``, ``model.encoder_fourier_bands``): with
``fourier_bands = F > 0`` the grid is extended by ``sin(2^f pi u), cos(2^f pi u)`` of each axis u in (y, x),
f = 0 .. F-1 (Fourier features, Tancik et al. 2020), before the same learned linear map. A CNN fed the linear
grid alone learns sharp edges slowly (the spectral bias those authors name); the decoder's masks then stay round
blobs for thousands of steps. In the encoder, the linear grid's dot product with an attention query is linear in
position, so a query can favour one side of the image but not one place: two objects of one colour far apart look
alike to it until the encoder's MLP has learned a local code; Fourier features give the keys that code from the
first step.
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


def fourier_grid(height: int, width: int, bands: int) -> Tensor:
    """:func:`build_grid` followed by ``sin(2^f pi u)`` for f < ``bands``, then ``cos(2^f pi u)``, for u = y, then x:
    [H, W, 4 + 4 * bands]."""
    grid = build_grid(height, width)  # [H, W, 4]
    if bands == 0:
        return grid
    freqs = (2.0 ** torch.arange(bands, dtype=torch.float32)) * torch.pi  # [F]
    angles = grid[..., :2, None] * freqs  # [H, W, 2, F]
    feats = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # [H, W, 4F]
    return torch.cat([grid, feats], dim=-1)  # [H, W, 4 + 4F]


class SoftPositionEmbed(nn.Module):
    """Adds ``Linear(4 -> C)(grid)`` to a channels-first feature map [B, C, H, W] (``fourier_bands`` F > 0:
    ``Linear(4 + 4F -> C)`` of the grid with its Fourier features, see :func:`fourier_grid`)."""

    def __init__(self, channels: int, resolution: tuple[int, int], fourier_bands: int = 0) -> None:
        super().__init__()
        if fourier_bands < 0:
            raise ValueError(f"fourier_bands must be >= 0, got {fourier_bands}")
        self.resolution = tuple(resolution)
        self.fourier_bands = fourier_bands
        grid = fourier_grid(*self.resolution, fourier_bands)  # [H, W, 4 + 4F]
        self.dense = nn.Linear(grid.shape[-1], channels)
        self.register_buffer("grid", grid, persistent=False)

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
