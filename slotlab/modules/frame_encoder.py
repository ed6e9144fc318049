"""SAVi's per-frame encoder (Kipf et al. 2022, ``FrameEncoder`` of the official code): CNN -> position embedding ->
flatten -> LayerNorm + MLP, giving the inputs of the corrector (Slot Attention) for one frame.

The same pieces as the image models' :class:`~slotlab.modules.encoders.SlotInputEncoder` (the CNN stack, the soft
position embedding, LayerNorm), with SAVi's MLP sizes: its output size is the CNN's channel count by default
(SAVi-S: 32 channels, MLP 32 -> 64 -> 32), where the image encoder maps to the slot size. Frames of a video are
folded into the batch by the caller ([B*T, 3, H, W]).

Parametrisation only: SAVi's grid is (y, x) in [-1, 1] mapped by a Dense(2 -> C); slotlab's is (y, x, 1 - y, 1 - x) in
[0, 1] mapped by a Linear(4 -> C): both are every affine function of (y, x), so the model computes the same family.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from slotlab.modules.encoders import CNNEncoder
from slotlab.modules.norm import LayerNorm
from slotlab.modules.position import SoftPositionEmbed

FLAX_LAYER_NORM_EPS = 1e-6  # flax.linen.LayerNorm's default, used by every LayerNorm of the SAVi code


class FrameEncoder(nn.Module):
    """[N, 3, H, W] frames -> [N, h*w, out_dim] tokens.

    Args:
        resolution: frame (H, W).
        channels: output channels of the 5x5 convolutions (SAVi-S: 32, 32, 32, 32), each followed by ReLU.
        strides: their strides (SAVi-S: all 1; SAVi-M: 2, 1, 1, 1).
        hidden_dim: hidden size of the output MLP (SAVi: 64).
        out_dim: output size of the MLP; ``None`` keeps the CNN's channel count (SAVi: ``output_size`` unset).
        position_embedding: add the soft position embedding (SAVi: on).
        layer_norm_eps: epsilon of the LayerNorm before the MLP (flax default 1e-6).
    """

    def __init__(
        self,
        resolution: tuple[int, int],
        channels: Sequence[int] = (32, 32, 32, 32),
        strides: Sequence[int] = (1, 1, 1, 1),
        hidden_dim: int = 64,
        out_dim: int | None = None,
        position_embedding: bool = True,
        layer_norm_eps: float = FLAX_LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        self.cnn = CNNEncoder(3, channels, strides)
        c = self.cnn.out_channels
        self.out_dim = c if out_dim is None else out_dim
        self.feature_resolution = self.cnn.output_resolution(tuple(resolution))
        self.pos = SoftPositionEmbed(c, self.feature_resolution) if position_embedding else None
        self.norm = LayerNorm(c, eps=layer_norm_eps)
        self.mlp = nn.Sequential(nn.Linear(c, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, self.out_dim))

    @property
    def num_tokens(self) -> int:
        return self.feature_resolution[0] * self.feature_resolution[1]

    def forward(self, frames: Tensor) -> Tensor:
        x = self.cnn(frames)  # [N, C, h, w]
        tokens = x.flatten(2).transpose(1, 2)  # [N, h*w, C]
        if self.pos is not None:
            tokens = self.pos.add_to_tokens(tokens, x.shape[-2:])
        return self.mlp(self.norm(tokens))  # [N, h*w, out_dim]
